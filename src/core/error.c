/* Error texts and the run-time version. */
#include <string.h>

#include "cymg/cymg.h"

const char *cymg_strerror(int err) {
  switch (err) {
    case 0: return "success";
    case CYMG_EBADURL: return "malformed URL";
    case CYMG_ESCHEME: return "unsupported URL scheme";
    case CYMG_ERESOLVE: return "host name could not be resolved";
    case CYMG_ELIMIT: return "size or count limit exceeded";
    case CYMG_ECLOSED: return "connection is closing";
    case CYMG_EPARSE: return "malformed input";
    case CYMG_ENOTFOUND: return "not found";
    case CYMG_ETYPE: return "value has another type";
    case CYMG_ESTATE: return "not valid in the current state";
    case CYMG_EPROTO: return "protocol violation by the peer";
    case CYMG_ETLS: return "TLS error";
    case CYMG_ENOCONN: return "no such connection";
    default: break;
  }
  if (err < 0 && err > -4096) return strerror(-err);
  return "unknown error";
}

const char *cymg_version(void) { return CYMG_VERSION_STRING; }
