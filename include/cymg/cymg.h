/* libcymg: one include for the whole public API. */
#ifndef CYMG_H
#define CYMG_H

#include "version.h"
#include "common.h"
#include "error.h"
#include "buf.h"
#include "log.h"
#include "core.h"
#include "timer.h"
#include "util.h"
#include "http.h"
#include "ws.h"
#include "mqtt.h"
#include "mqtt_broker.h"
#include "sntp.h"
#include "dns.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string at run time (compare with CYMG_VERSION_STRING). */
CYMG_API const char *cymg_version(void);

#ifdef __cplusplus
}
#endif
#endif
