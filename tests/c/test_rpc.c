/* JSON-RPC 2.0 dispatcher: every error code, notifications, batches, printf
 * results, escaping of messages, glob methods, listing. */
#include "cymg_test.h"
#include "cymg/json.h"
#include "cymg/rpc.h"

typedef struct {
  int calls;
  int rc1, rc2; /* what the handler's first and second answers returned */
  size_t params_len, id_len;
  char id[32], frame_first, frame_last; /* copies: the frame is freed after the call */
  char method[64];
  char caps[4][32];
} probe;

static void note(cymg_rpc_req *req) {
  probe *p = cymg_rpc_req_fn_data(req);
  p->calls++;
  cymg_str id = cymg_rpc_req_id(req), frame = cymg_rpc_req_frame(req);
  p->params_len = cymg_rpc_req_params(req).len;
  p->id_len = id.len;
  snprintf(p->id, sizeof(p->id), "%.*s", (int) id.len, id.buf);
  p->frame_first = frame.buf[0];
  p->frame_last = frame.buf[frame.len - 1];
  cymg_str m = cymg_rpc_req_method(req);
  snprintf(p->method, sizeof(p->method), "%.*s", (int) m.len, m.buf);
  const cymg_str *c = cymg_rpc_req_captures(req);
  for (int i = 0; i < 4; i++) {
    p->caps[i][0] = '\0';
    if (c[i].buf == NULL) break;
    snprintf(p->caps[i], sizeof(p->caps[i]), "%.*s", (int) c[i].len, c[i].buf);
  }
}

static void sum(cymg_rpc_req *req) {
  note(req);
  double a = 0, b = 0;
  if (cymg_json_get_num(cymg_rpc_req_params(req), "$[0]", &a) < 0 ||
      cymg_json_get_num(cymg_rpc_req_params(req), "$[1]", &b) < 0) {
    cymg_rpc_err(req, CYMG_RPC_INVALID_PARAMS, "need two numbers");
    return;
  }
  cymg_rpc_ok(req, "%g", a + b);
}

static void echo(cymg_rpc_req *req) {
  note(req);
  cymg_str p = cymg_rpc_req_params(req);
  if (p.len == 0) {
    cymg_rpc_ok(req, NULL);
  } else {
    cymg_rpc_ok(req, "{\"got\":%.*s}", (int) p.len, p.buf);
  }
}

static void failing(cymg_rpc_req *req) {
  note(req);
  cymg_rpc_err(req, 42, "bad \"%s\"\n\t\\ %d \x01 \xff", "thing", 7);
}

static void silent(cymg_rpc_req *req) {
  note(req);
}

static void twice(cymg_rpc_req *req) {
  probe *p = cymg_rpc_req_fn_data(req);
  note(req);
  p->rc1 = cymg_rpc_ok(req, "1");
  p->rc2 = cymg_rpc_ok(req, "2");
  if (cymg_rpc_err(req, 1, "x") != CYMG_ESTATE) p->rc2 = -1;
}

static void badjson(cymg_rpc_req *req) {
  probe *p = cymg_rpc_req_fn_data(req);
  note(req);
  p->rc1 = cymg_rpc_ok(req, "{oops:%d}", 1);
  p->rc2 = cymg_rpc_ok(req, "[%d,%s]", 1, "\"two\"");
}

static void glob(cymg_rpc_req *req) {
  note(req);
  const cymg_str *c = cymg_rpc_req_captures(req);
  cymg_buf b = {NULL, 0, 0};
  assert_true(cymg_json_escape(&b, c[0]) > 0);
  cymg_rpc_ok(req, "%s", b.buf);
  cymg_buf_free(&b);
}

static probe P[8];
static cymg_rpc *R;

static int setup(void **state) {
  (void) state;
  memset(P, 0, sizeof(P));
  assert_int_equal(cymg_rpc_new(&R), 0);
  assert_int_equal(cymg_rpc_add(R, "sum", sum, &P[0]), 0);
  assert_int_equal(cymg_rpc_add(R, "echo", echo, &P[1]), 0);
  assert_int_equal(cymg_rpc_add(R, "fail", failing, &P[2]), 0);
  assert_int_equal(cymg_rpc_add(R, "silent", silent, &P[3]), 0);
  assert_int_equal(cymg_rpc_add(R, "twice", twice, &P[4]), 0);
  assert_int_equal(cymg_rpc_add(R, "badjson", badjson, &P[5]), 0);
  assert_int_equal(cymg_rpc_add(R, "user.*.get", glob, &P[6]), 0);
  assert_int_equal(cymg_rpc_add(R, "user.#", glob, &P[7]), 0);
  return 0;
}

static int teardown(void **state) {
  (void) state;
  cymg_rpc_free(R);
  R = NULL;
  return 0;
}

/* Runs one frame (in an exactly sized heap block) and checks the reply text.
 * Every non-empty reply must itself be valid JSON. */
static void expect(const char *frame, const char *want) {
  size_t n = strlen(frame);
  char *f = malloc(n ? n : 1);
  assert_non_null(f);
  memcpy(f, frame, n);
  cymg_buf out = {NULL, 0, 0};
  int rc = cymg_rpc_process(R, cymg_str_n(f, n), &out);
  assert_int_equal(rc, (int) out.len);
  const char *got = out.buf ? out.buf : "";
  if (strcmp(got, want) != 0) fail_msg("frame %s\n got: %s\nwant: %s", frame, got, want);
  if (out.len > 0) assert_true(cymg_json_validate(cymg_str_n(out.buf, out.len)) > 0);
  cymg_buf_free(&out);
  free(f);
}

#define HEAD "{\"jsonrpc\":\"2.0\",\"id\":"
#define ERR(id, code, msg) HEAD id ",\"error\":{\"code\":" #code ",\"message\":\"" msg "\"}}"

static void test_results(void **state) {
  (void) state;
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2.5],\"id\":1}",
         HEAD "1,\"result\":3.5}");
  assert_int_equal(P[0].calls, 1);
  expect(" \n{\"id\":\"abc\",\"params\":[2,3],\"method\":\"sum\",\"jsonrpc\":\"2.0\"}\t",
         HEAD "\"abc\",\"result\":5}");
  assert_string_equal(P[0].id, "\"abc\"");
  assert_int_equal(P[0].frame_first, '{');
  assert_int_equal(P[0].frame_last, '}');
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"a\":[1,\"\\u00e9\"]},\"id\":-1.5e3}",
         HEAD "-1.5e3,\"result\":{\"got\":{\"a\":[1,\"\\u00e9\"]}}}");
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":null}", HEAD "null,\"result\":null}");
  assert_int_equal(P[1].params_len, 0);
  /* Escaped method name and "2.0" are compared unescaped. */
  expect("{\"jsonrpc\":\"2\\u002e0\",\"method\":\"s\\u0075m\",\"params\":[1,1],\"id\":7}",
         HEAD "7,\"result\":2}");
  assert_string_equal(P[0].method, "sum");
  /* Duplicate members: the first counts. */
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"method\":\"nope\",\"params\":[1,1],\"id\":8}",
         HEAD "8,\"result\":2}");
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1],\"id\":9}",
         ERR("9", -32602, "need two numbers"));
}

static void test_parse_error(void **state) {
  (void) state;
  static const char *const frames[] = {"",       "{",     "{\"jsonrpc\":\"2.0\",}", "[1,]",
                                       "[{}, {", "nope",  "{\"a\":1} x",            "\xff",
                                       " ",      "[{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":1},]"};
  for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
    expect(frames[i], ERR("null", -32700, "Parse error"));
  }
  assert_int_equal(P[0].calls, 0);
}

static void test_invalid_request(void **state) {
  (void) state;
  expect("1", ERR("null", -32600, "Invalid Request"));
  expect("\"x\"", ERR("null", -32600, "Invalid Request"));
  expect("null", ERR("null", -32600, "Invalid Request"));
  expect("{}", ERR("null", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"1.0\",\"method\":\"sum\",\"id\":1}", ERR("1", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":2.0,\"method\":\"sum\",\"id\":1}", ERR("1", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0 \",\"method\":\"sum\",\"id\":1}", ERR("1", -32600, "Invalid Request"));
  expect("{\"method\":\"sum\",\"id\":\"q\"}", ERR("\"q\"", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", ERR("1", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"id\":1}", ERR("1", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":{}}", ERR("null", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":[1]}", ERR("null", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":true}", ERR("null", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":\"x\",\"id\":1}",
         ERR("1", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":3}", ERR("null", -32600, "Invalid Request"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":null,\"id\":2}",
         ERR("2", -32600, "Invalid Request"));
  /* An invalid request is answered even without an id. */
  expect("{\"jsonrpc\":\"2.0\",\"method\":5}", ERR("null", -32600, "Invalid Request"));
  assert_int_equal(P[0].calls, 0);
}

static void test_method_not_found(void **state) {
  (void) state;
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1}", ERR("1", -32601, "Method not found"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"Sum\",\"id\":\"x\"}",
         ERR("\"x\"", -32601, "Method not found"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"su\",\"id\":null}", ERR("null", -32601, "Method not found"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"summ\",\"id\":1}", ERR("1", -32601, "Method not found"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}", ERR("1", -32601, "Method not found"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\\u0000\",\"id\":1}", ERR("1", -32601, "Method not found"));
  /* Unknown notifications are dropped silently. */
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}", "");
}

static void test_notifications(void **state) {
  (void) state;
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2]}", "");
  assert_int_equal(P[0].calls, 1);
  assert_int_equal(P[0].id_len, 0);
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"fail\"}", "");
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"silent\"}", "");
  assert_int_equal(P[3].calls, 1);
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"twice\"}", "");
  assert_int_equal(P[4].rc1, 0);
  assert_int_equal(P[4].rc2, CYMG_ESTATE);
}

static void test_handler_answers(void **state) {
  (void) state;
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":1}",
         ERR("1", 42, "bad \\\"thing\\\"\\n\\t\\\\ 7 \\u0001 \xef\xbf\xbd"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"silent\",\"id\":1}",
         ERR("1", -32603, "Internal error: no response"));
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"twice\",\"id\":1}", HEAD "1,\"result\":1}");
  assert_int_equal(P[4].rc1, 0);
  assert_int_equal(P[4].rc2, CYMG_ESTATE);
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"badjson\",\"id\":1}", HEAD "1,\"result\":[1,\"two\"]}");
  assert_int_equal(P[5].rc1, CYMG_EINVAL);
  assert_int_equal(P[5].rc2, 0);
}

static void test_batches(void **state) {
  (void) state;
  expect("[]", ERR("null", -32600, "Invalid Request"));
  expect(" [ ] ", ERR("null", -32600, "Invalid Request"));
  expect("[1]", "[" ERR("null", -32600, "Invalid Request") "]");
  expect("[1,2]", "[" ERR("null", -32600, "Invalid Request") "," ERR("null", -32600,
                                                                      "Invalid Request") "]");
  /* All notifications: nothing at all, but each handler ran. */
  expect("[{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2]},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"},{\"jsonrpc\":\"2.0\",\"method\":\"silent\"}]",
         "");
  assert_int_equal(P[0].calls, 1);
  assert_int_equal(P[3].calls, 1);
  /* Mixed: answers in order, notifications skipped, commas right. */
  expect("[{\"jsonrpc\":\"2.0\",\"method\":\"echo\"},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[4,5],\"id\":\"a\"},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[4,5]},"
         "{\"x\":1},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":3},"
         "[],"
         "{\"jsonrpc\":\"2.0\",\"method\":\"silent\",\"id\":4},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"fail\"}]",
         "[" HEAD "\"a\",\"result\":9}," ERR("null", -32600, "Invalid Request") "," ERR(
             "3", -32601, "Method not found") "," ERR("null", -32600, "Invalid Request") "," ERR("4",
                                                                                                -32603,
                                                                                                "Internal "
                                                                                                "error: no "
                                                                                                "response") "]");
  /* A nested batch is not a request. */
  expect("[[{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2],\"id\":1}]]",
         "[" ERR("null", -32600, "Invalid Request") "]");
}

static void test_globs_and_listing(void **state) {
  (void) state;
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"user.42.get\",\"id\":1}", HEAD "1,\"result\":\"42\"}");
  assert_int_equal(P[6].calls, 1);
  assert_string_equal(P[6].caps[0], "42");
  assert_string_equal(P[6].caps[1], "");
  /* '*' stops at '/', so the later '#' glob takes it. */
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"user.a/b.get\",\"id\":1}",
         HEAD "1,\"result\":\"a/b.get\"}");
  assert_int_equal(P[7].calls, 1);
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"user.\",\"id\":1}", HEAD "1,\"result\":\"\"}");
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"users\",\"id\":1}", ERR("1", -32601, "Method not found"));

  assert_int_equal(cymg_rpc_count(R), 8);
  assert_string_equal(cymg_rpc_method(R, 0), "sum");
  assert_string_equal(cymg_rpc_method(R, 6), "user.*.get");
  assert_null(cymg_rpc_method(R, 8));
  /* Re-adding a name replaces it in place. */
  assert_int_equal(cymg_rpc_add(R, "sum", echo, &P[1]), 0);
  assert_int_equal(cymg_rpc_count(R), 8);
  assert_string_equal(cymg_rpc_method(R, 0), "sum");
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1],\"id\":1}",
         HEAD "1,\"result\":{\"got\":[1]}}");
  /* First registered match wins, even over a later exact name. */
  assert_int_equal(cymg_rpc_add(R, "user.x.get", sum, &P[0]), 0);
  expect("{\"jsonrpc\":\"2.0\",\"method\":\"user.x.get\",\"id\":1}", HEAD "1,\"result\":\"x\"}");
  assert_int_equal(cymg_rpc_count(R), 9);

  assert_int_equal(cymg_rpc_add(R, "", sum, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_add(R, NULL, sum, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_add(R, "x", NULL, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_add(NULL, "x", sum, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_count(NULL), 0);
  assert_null(cymg_rpc_method(NULL, 0));
  assert_int_equal(cymg_rpc_new(NULL), CYMG_EINVAL);
  cymg_rpc_free(NULL);
}

static void test_appends(void **state) {
  (void) state;
  cymg_buf out = {NULL, 0, 0};
  assert_int_equal(cymg_buf_append(&out, "prefix:", 7), 0);
  const char *f = "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2],\"id\":1}";
  int rc = cymg_rpc_process(R, cymg_str_c(f), &out);
  assert_int_equal(rc, (int) out.len - 7);
  assert_string_equal(out.buf, "prefix:" HEAD "1,\"result\":3}");
  rc = cymg_rpc_process(R, cymg_str_c("{\"jsonrpc\":\"2.0\",\"method\":\"sum\"}"), &out);
  assert_int_equal(rc, 0);
  assert_int_equal(cymg_rpc_process(R, cymg_str_c(f), NULL), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_process(NULL, cymg_str_c(f), &out), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_process(R, cymg_str_n(NULL, 3), &out), CYMG_EINVAL);
  cymg_buf_free(&out);
}

/* CYMG_RPC_LENIENT: a missing "jsonrpc" is accepted, a wrong one still is not;
 * strict is the default. */
static void test_lenient(void **state) {
  (void) state;
  const char *no_version = "{\"method\":\"sum\",\"params\":[1,2],\"id\":\"a\"}";
  expect(no_version,
         "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32600,\"message\":"
         "\"Invalid Request\"}}");
  assert_int_equal(cymg_rpc_set_flags(R, 99), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_set_flags(NULL, CYMG_RPC_LENIENT), CYMG_EINVAL);
  assert_int_equal(cymg_rpc_set_flags(R, CYMG_RPC_LENIENT), 0);
  expect(no_version, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":3}");
  expect("{\"method\":\"sum\",\"params\":[1,2],\"id\":1.50}",
         "{\"jsonrpc\":\"2.0\",\"id\":1.50,\"result\":3}"); /* id verbatim */
  expect("{\"method\":\"sum\",\"params\":[1,2]}", ""); /* a notification */
  expect("{\"jsonrpc\":\"1.0\",\"method\":\"sum\",\"id\":3}",
         "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32600,\"message\":"
         "\"Invalid Request\"}}");
  assert_int_equal(cymg_rpc_set_flags(R, 0), 0);
  expect(no_version,
         "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32600,\"message\":"
         "\"Invalid Request\"}}");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parse_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_method_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handler_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_globs_and_listing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_appends, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lenient, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
