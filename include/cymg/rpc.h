/* JSON-RPC 2.0 dispatcher: a table of methods (exact names or cymg_match globs)
 * and a function that answers one frame (a request or a batch). Transport-free:
 * the caller feeds frames from HTTP, WebSocket or anything else and sends what it
 * gets back. A dispatcher is not thread-safe; use one per thread or lock. */
#ifndef CYMG_RPC_H
#define CYMG_RPC_H

#include <stdarg.h>

#include "buf.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Standard error codes (JSON-RPC 2.0 section 5.1). */
enum {
  CYMG_RPC_PARSE_ERROR = -32700,
  CYMG_RPC_INVALID_REQUEST = -32600,
  CYMG_RPC_METHOD_NOT_FOUND = -32601,
  CYMG_RPC_INVALID_PARAMS = -32602,
  CYMG_RPC_INTERNAL_ERROR = -32603
};

/* Glob captures a handler can see (more wildcards than this are matched but not
 * reported). */
#define CYMG_RPC_MAX_CAPS 8

typedef struct cymg_rpc cymg_rpc;
/* One request being handled. Valid only while its handler runs. */
typedef struct cymg_rpc_req cymg_rpc_req;
/* A method handler. It answers with cymg_rpc_ok() or cymg_rpc_err(); only the
 * first answer counts. A handler that does not answer a request that has an id
 * makes the dispatcher send error -32603 "Internal error: no response".
 * Notifications (no id) get no response whatever the handler does. */
typedef void (*cymg_rpc_fn)(cymg_rpc_req *req);

/* Creates an empty dispatcher in *out. Returns 0, CYMG_EINVAL or CYMG_ENOMEM. */
CYMG_API CYMG_NODISCARD int cymg_rpc_new(cymg_rpc **out);
/* Frees a dispatcher and its method table (NULL is fine). Not from a handler. */
CYMG_API void cymg_rpc_free(cymg_rpc *rpc);

/* Registers `fn` for `method`, a non-empty name or, when it contains '?', '*' or
 * '#', a cymg_match glob. The name is copied. Lookup tries methods in
 * registration order and the first match wins (exact names get no priority);
 * registering a name already present replaces its fn and fn_data and keeps its
 * place. Returns 0, CYMG_EINVAL or CYMG_ENOMEM. */
CYMG_API int cymg_rpc_add(cymg_rpc *rpc, const char *method, cymg_rpc_fn fn, void *fn_data);
/* Number of registered methods. */
CYMG_API size_t cymg_rpc_count(const cymg_rpc *rpc);
/* The i-th registered method name or glob (registration order), or NULL when i is
 * out of range. Owned by the dispatcher; valid until it is freed. */
CYMG_API const char *cymg_rpc_method(const cymg_rpc *rpc, size_t i);

/* Flags for cymg_rpc_set_flags(). */
enum {
  /* Accept request objects that have no "jsonrpc" member, as JSON-RPC 1.0 style
   * clients send them (one that is present must still be "2.0"). Responses
   * always carry "jsonrpc":"2.0". Off by default: the dispatcher is strict. */
  CYMG_RPC_LENIENT = 1
};

/* Sets the dispatcher's CYMG_RPC_* flags (replacing the previous ones). Returns
 * 0, or CYMG_EINVAL for a NULL rpc or an unknown flag. Not from a handler. */
CYMG_API int cymg_rpc_set_flags(cymg_rpc *rpc, unsigned flags);

/* Answers one frame: a request object or a batch array. Appends the response
 * text to `out`: a response object, an array of them for a batch, or nothing when
 * there is nothing to answer (a notification, or a batch of notifications).
 * Errors are answered as the spec says: -32700 for malformed JSON (id null),
 * -32600 for a request that is not an object, whose "jsonrpc" is not "2.0"
 * (or absent, unless CYMG_RPC_LENIENT is set),
 * whose "method" is not a string, whose "id" is not a string, number or null, or
 * whose "params" is not an array or object (id null unless a valid id was read),
 * and for an empty batch; -32601 for an unknown method. Handlers run
 * synchronously, in batch order. Returns the number of bytes appended (capped at
 * INT_MAX), or CYMG_EINVAL / CYMG_ENOMEM with `out` unchanged. Handlers must not
 * call cymg_rpc_process() on the same `out`. */
CYMG_API CYMG_NODISCARD int cymg_rpc_process(cymg_rpc *rpc, cymg_str frame, cymg_buf *out);

/* The whole request object. */
CYMG_API cymg_str cymg_rpc_req_frame(const cymg_rpc_req *req);
/* The method name, unescaped (not NUL-terminated). */
CYMG_API cymg_str cymg_rpc_req_method(const cymg_rpc_req *req);
/* The raw JSON of "params" (an array or object), or an empty span when absent. */
CYMG_API cymg_str cymg_rpc_req_params(const cymg_rpc_req *req);
/* The raw JSON of "id", or an empty span for a notification. */
CYMG_API cymg_str cymg_rpc_req_id(const cymg_rpc_req *req);
/* The fn_data given to cymg_rpc_add(). */
CYMG_API void *cymg_rpc_req_fn_data(const cymg_rpc_req *req);
/* Spans of the method name matched by the glob's wildcards (see cymg_match), in
 * order, ended by an entry {NULL, 0}; just the end entry for exact names. */
CYMG_API const cymg_str *cymg_rpc_req_captures(const cymg_rpc_req *req);

/* Answers with "result": the printf-formatted text, which must be one valid JSON
 * value (a NULL format gives null). Returns 0; CYMG_ESTATE when the request was
 * already answered; CYMG_EINVAL when the text is not valid JSON or the format is
 * bad, and CYMG_ENOMEM, in which cases nothing is sent and the handler may still
 * answer. For a notification it only marks the request answered. */
CYMG_API int cymg_rpc_ok(cymg_rpc_req *req, const char *result_fmt, ...) CYMG_PRINTF(2, 3);
CYMG_API int cymg_rpc_okv(cymg_rpc_req *req, const char *result_fmt, va_list ap)
    CYMG_PRINTF(2, 0);
/* Answers with an error object {"code": code, "message": ...}; the formatted
 * message is JSON-escaped (invalid UTF-8 becomes U+FFFD). Returns as
 * cymg_rpc_ok(). */
CYMG_API int cymg_rpc_err(cymg_rpc_req *req, int code, const char *msg_fmt, ...)
    CYMG_PRINTF(3, 4);
CYMG_API int cymg_rpc_errv(cymg_rpc_req *req, int code, const char *msg_fmt, va_list ap)
    CYMG_PRINTF(3, 0);

#ifdef __cplusplus
}
#endif
#endif
