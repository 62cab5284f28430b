/* Fuzzes the JSON-RPC dispatcher: whatever arrives, the reply is empty or one
 * valid JSON value of the right shape. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/json.h"
#include "cymg/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
  do {               \
    if (!(c)) abort(); \
  } while (0)

static void echo(cymg_rpc_req *req) {
  cymg_str p = cymg_rpc_req_params(req);
  if (p.len == 0) {
    cymg_rpc_ok(req, NULL);
  } else {
    cymg_rpc_ok(req, "%.*s", (int) p.len, p.buf);
  }
}

/* Answers with the raw params as an error message (exercises escaping) and then
 * tries a second, ignored answer. */
static void err(cymg_rpc_req *req) {
  cymg_str p = cymg_rpc_req_params(req);
  cymg_rpc_err(req, -1, "%.*s", (int) p.len, p.buf);
  CHECK(cymg_rpc_ok(req, "1") == CYMG_ESTATE);
}

static void caps(cymg_rpc_req *req) {
  const cymg_str *c = cymg_rpc_req_captures(req);
  cymg_str m = cymg_rpc_req_method(req);
  cymg_buf b = {NULL, 0, 0};
  for (int i = 0; c[i].buf != NULL; i++) {
    CHECK(i < CYMG_RPC_MAX_CAPS);
    CHECK(c[i].buf >= m.buf && c[i].buf + c[i].len <= m.buf + m.len);
    if (cymg_json_escape(&b, c[i]) < 0) break; /* out of memory: fewer captures */
  }
  /* A raw, possibly broken result: rejected results must leave no trace. */
  if (cymg_rpc_ok(req, "[%s]", b.buf ? b.buf : "") < 0) cymg_rpc_ok(req, "%.*s", (int) m.len, m.buf);
  cymg_buf_free(&b);
}

static void silent(cymg_rpc_req *req) {
  (void) req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cymg_rpc *rpc;
  if (cymg_rpc_new(&rpc) < 0) return 0;
  cymg_rpc_add(rpc, "echo", echo, NULL);
  cymg_rpc_add(rpc, "err", err, NULL);
  cymg_rpc_add(rpc, "c.*.?.#", caps, NULL);
  cymg_rpc_add(rpc, "silent", silent, NULL);
  char *p = malloc(size ? size : 1);
  if (p == NULL) {
    cymg_rpc_free(rpc);
    return 0;
  }
  memcpy(p, data, size);
  cymg_str in = cymg_str_n(p, size);
  cymg_buf out = {NULL, 0, 0};
  int n = cymg_rpc_process(rpc, in, &out);
  CHECK(n >= 0 && (size_t) n == out.len);
  int in_type = cymg_json_validate(in);
  if (out.len > 0) {
    int t = cymg_json_validate(cymg_str_n(out.buf, out.len));
    CHECK(t == CYMG_JSON_OBJECT || (t == CYMG_JSON_ARRAY && in_type == CYMG_JSON_ARRAY));
    if (in_type < 0) {
      int64_t code;
      CHECK(cymg_json_get_int(cymg_str_n(out.buf, out.len), "$.error.code", &code) == 0);
      CHECK(code == -32700);
    }
  } else {
    CHECK(in_type == CYMG_JSON_OBJECT || in_type == CYMG_JSON_ARRAY);
  }
  cymg_buf_free(&out);
  free(p);
  cymg_rpc_free(rpc);
  return 0;
}
