/* The one source of libcymg's version: CMake reads these three macros. */
#ifndef CYMG_VERSION_H
#define CYMG_VERSION_H

#define CYMG_VERSION_MAJOR 0
#define CYMG_VERSION_MINOR 1
#define CYMG_VERSION_PATCH 0
#define CYMG_VERSION_STRING "0.1.0"
/* One number for compile-time comparisons: 0xMMmmpp. */
#define CYMG_VERSION_NUM \
  ((CYMG_VERSION_MAJOR << 16) | (CYMG_VERSION_MINOR << 8) | CYMG_VERSION_PATCH)

#endif
