/* A fresh directory under /tmp with the path of a persistence file in it, for
 * the store and persistence tests: setup makes it, teardown removes the file,
 * a compaction's leftover temporary file and the directory. */
#ifndef CYMG_STORE_TEST_H
#define CYMG_STORE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64], path[128];

static int store_dir_setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/cymg-store-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(path, sizeof(path), "%s/broker.db", dir);
  return 0;
}

static int store_dir_teardown(void **state) {
  (void)state;
  char p[160];
  unlink(path);
  snprintf(p, sizeof(p), "%s.tmp", path);
  unlink(p);
  return rmdir(dir);
}

#endif
