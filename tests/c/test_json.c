/* JSON: validity tables by category, depth limits, numbers, paths, getters,
 * iteration, escaping. Every input is copied into an exactly sized heap block so
 * ASan reports any read past the end (the parser never sees a NUL terminator). */
#include <float.h>
#include <math.h>

#include "cymg_test.h"
#include "cymg/json.h"

typedef struct {
  const char *s;
  size_t len;
} doc;
#define D(lit) {lit, sizeof(lit) - 1}

static cymg_str exact(const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  return cymg_str_n(p, n);
}
static void release(cymg_str s) {
  free((void *) s.buf);
}
static int validate(const char *s, size_t n) {
  cymg_str in = exact(s, n);
  int rc = cymg_json_validate(in);
  release(in);
  return rc;
}

static const doc valid_docs[] = {
    /* structures */
    D("[]"), D("{}"), D(" [ ] "), D("\t\n\r {\n}\r\n"), D("[null]"), D("[[[]]]"), D("[{}]"),
    D("{\"a\":[]}"), D("{\"a\":1,\"b\":2}"), D("{\"a\":1,\"a\":2}"), D("{\"\":0}"),
    D("{ \"a\" : [ 1 , { } , [ ] ] }"), D("[1,\"x\",true,false,null,{},[]]"),
    D("{\"a\":{\"b\":{\"c\":[{\"d\":null}]}}}"),
    /* scalars at top level */
    D("null"), D("true"), D("false"), D("\"\""), D("\"a\""), D(" 1 "),
    /* numbers */
    D("0"), D("-0"), D("-0.0"), D("0e0"), D("0E+1"), D("0e-1"), D("1e-1"), D("1E5"),
    D("123.456e78"), D("-123"), D("1.5E-3"), D("10"), D("1e999"), D("-1e-999"),
    D("[1e1,0.1e1,1e+1,1e-1,1E1]"), D("123456789012345678901234567890"),
    D("0.00000000000000000000000000000000000000001"), D("[-0,0,-1,1.0]"),
    /* strings and escapes */
    D("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""), D("\"\\u0000\""), D("\"\\u00e9\\u00E9\""),
    D("\"\\uD834\\uDD1E\""), D("\"\\udbff\\udfff\""), D("\"\\uFFFF\""), D("\"\\u002F\""),
    D("\"a/b\""), D("\"\x7f\""), D("\"'\""), D("\"\\\\u0041\""), D("[\"\\\"\"]"),
    /* UTF-8: 2, 3 and 4 bytes, boundaries */
    D("\"\xc3\xa9\""), D("\"\xe2\x82\xac\""), D("\"\xf0\x9d\x84\x9e\""), D("\"\xc2\x80\""),
    D("\"\xdf\xbf\""), D("\"\xe0\xa0\x80\""), D("\"\xed\x9f\xbf\""), D("\"\xee\x80\x80\""),
    D("\"\xef\xbf\xbf\""), D("\"\xf0\x90\x80\x80\""), D("\"\xf4\x8f\xbf\xbf\""),
    D("{\"\xc3\xa9\":\"\xe2\x82\xac\"}"),
};

static const doc invalid_docs[] = {
    /* empty and structural */
    D(""), D(" "), D("\n"), D("["), D("]"), D("{"), D("}"), D("[1,]"), D("[,1]"), D("[,]"),
    D("[1,,2]"), D("{\"a\":1,}"), D("{,}"), D("{\"a\"}"), D("{\"a\":}"), D("{\"a\" 1}"),
    D("{1:1}"), D("{null:1}"), D("{\"a\":1 \"b\":2}"), D("[1 2]"), D("[1]]"), D("[]]"), D("{}}"),
    D("[1] x"), D("[1]\0"), D("1 2"), D("\"a\" \"b\""), D("[\"a\"\"b\"]"), D("{\"a\"::1}"),
    D("[}"), D("{]"), D("{\"a\":1]"), D("[1}"), D("{\"a\",1}"),
    /* quotes, comments, foreign syntax */
    D("{'a':1}"), D("['a']"), D("'a'"), D("/* c */ 1"), D("1 // c"), D("[1] /**/"), D("# x"),
    D("\xef\xbb\xbf[]"), D("[\x0c]"), D("[\xc2\xa0]"), D("[\v]"), D("{a:1}"), D("[undefined]"),
    /* literals */
    D("tru"), D("nul"), D("True"), D("NULL"), D("nulls"), D("truefalse"), D("[t]"), D("fals"),
    /* numbers */
    D("01"), D("-01"), D("00"), D("+1"), D(".5"), D("1."), D("1.e1"), D("1e"), D("1e+"),
    D("1E-"), D("-"), D("--1"), D("0x1F"), D("0X1"), D("NaN"), D("nan"), D("Infinity"),
    D("-Infinity"), D("[Infinity]"), D("1e1.0"), D("1.2.3"), D("1e1e1"), D("[-]"), D("[-a]"),
    D("[.1]"), D("- 1"), D("1 .5"), D("0.e1"), D("2.e-3"), D("1_000"), D("\xef\xbc\x91"),
    D("012"), D("-.5"), D("[1e]"), D("1ee2"), D("1+2"),
    /* strings */
    D("\"abc"), D("\""), D("\"\\\""), D("\"\\x41\""), D("\"\\U0041\""), D("\"\\'\""),
    D("\"\\ \""), D("\"\\a\""), D("\"\\0\""), D("\"\\u12\""), D("\"\\u12G4\""),
    D("\"\\u\""), D("\"\\u00e\""), D("\"\\"), D("\"\\u0000"), D("\"\t\""), D("\"\n\""),
    D("\"\x01\""), D("\"\x1f\""), D("\"\0\""), D("[\"a\\\"]"),
    /* surrogates in escapes */
    D("\"\\uD800\""), D("\"\\uDC00\""), D("\"\\uDFFF\\uD800\""), D("\"\\uD800\\u0041\""),
    D("\"\\uD800\\\""), D("\"\\uDBFF\\uDBFF\""), D("\"\\uD800x\""), D("\"\\uD800\\n\""),
    D("\"\\uD834\\uDD1\""), D("\"\\uD834\\\\uDD1E\""),
    /* invalid UTF-8 */
    D("\"\x80\""), D("\"\xbf\""), D("\"\xc0\xaf\""), D("\"\xc1\xbf\""), D("\"\xe0\x80\xaf\""),
    D("\"\xe0\x9f\xbf\""), D("\"\xf0\x80\x80\xaf\""), D("\"\xf0\x8f\xbf\xbf\""),
    D("\"\xed\xa0\x80\""), D("\"\xed\xbf\xbf\""), D("\"\xf4\x90\x80\x80\""),
    D("\"\xf5\x80\x80\x80\""), D("\"\xf8\x88\x80\x80\x80\""), D("\"\xfe\""), D("\"\xff\""),
    D("\"\xe2\x82\""), D("\"\xe2\x82"), D("\"\xc3\""), D("\"\xf0\x9d\x84\""), D("\"\xc3\xc3\""),
    D("{\"\xff\":1}"), D("\xc3\xa9"),
};

static void test_valid_table(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(valid_docs) / sizeof(valid_docs[0]); i++) {
    int rc = validate(valid_docs[i].s, valid_docs[i].len);
    if (rc <= 0) fail_msg("valid doc #%zu rejected: %s", i, valid_docs[i].s);
    /* "$" agrees with validate and gives the trimmed value. */
    cymg_str in = exact(valid_docs[i].s, valid_docs[i].len), v;
    assert_int_equal(cymg_json_find(in, "$", &v), rc);
    assert_true(v.buf >= in.buf && v.buf + v.len <= in.buf + in.len);
    release(in);
  }
}

static void test_invalid_table(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(invalid_docs) / sizeof(invalid_docs[0]); i++) {
    int rc = validate(invalid_docs[i].s, invalid_docs[i].len);
    if (rc != CYMG_EPARSE) fail_msg("invalid doc #%zu accepted (%d): %s", i, rc, invalid_docs[i].s);
    /* Every prefix of a valid document is either valid or rejected, without
     * reading past its end; every invalid one stays invalid under lookup. */
    cymg_str in = exact(invalid_docs[i].s, invalid_docs[i].len);
    assert_int_equal(cymg_json_find(in, "$", NULL), CYMG_EPARSE);
    release(in);
  }
  assert_int_equal(cymg_json_validate(cymg_str_n(NULL, 0)), CYMG_EPARSE);
}

static void test_prefixes(void **state) {
  (void) state;
  /* Each truncation of a valid document must be handled within bounds. */
  for (size_t i = 0; i < sizeof(valid_docs) / sizeof(valid_docs[0]); i++) {
    for (size_t n = 0; n < valid_docs[i].len; n++) (void) validate(valid_docs[i].s, n);
  }
  assert_int_equal(validate("[1,2]", 4), CYMG_EPARSE);
  assert_int_equal(validate("12", 1), CYMG_JSON_NUMBER);
  assert_int_equal(validate("true", 3), CYMG_EPARSE);
}

static char *nest(const char *open, const char *mid, const char *close, size_t depth,
                  size_t *len) {
  size_t o = strlen(open), mlen = strlen(mid), c = strlen(close);
  *len = depth * (o + c) + mlen;
  char *s = malloc(*len);
  assert_non_null(s);
  for (size_t i = 0; i < depth; i++) memcpy(s + i * o, open, o);
  memcpy(s + depth * o, mid, mlen);
  for (size_t i = 0; i < depth; i++) memcpy(s + depth * o + mlen + i * c, close, c);
  return s;
}

static void test_depth(void **state) {
  (void) state;
  size_t len;
  char *s = nest("[", "", "]", CYMG_JSON_MAX_DEPTH, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_JSON_ARRAY);
  free(s);
  s = nest("[", "", "]", CYMG_JSON_MAX_DEPTH + 1, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_EPARSE);
  free(s);
  s = nest("{\"a\":", "1", "}", CYMG_JSON_MAX_DEPTH, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_JSON_OBJECT);
  cymg_str v;
  assert_int_equal(cymg_json_find(cymg_str_n(s, len), "$.a.a.a", &v), CYMG_JSON_OBJECT);
  free(s);
  s = nest("{\"a\":", "1", "}", CYMG_JSON_MAX_DEPTH + 1, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_EPARSE);
  free(s);
  /* Mixed nesting counts both kinds: 2 * 255 + 2 = 512 levels, then 514. */
  s = nest("[{\"k\":", "[[]]", "}]", CYMG_JSON_MAX_DEPTH / 2 - 1, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_JSON_ARRAY);
  free(s);
  s = nest("[{\"k\":", "[[]]", "}]", CYMG_JSON_MAX_DEPTH / 2, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_EPARSE);
  free(s);
  /* Far beyond the limit, and unterminated: rejected, no stack growth. */
  s = nest("[", "", "", 1000000, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_EPARSE);
  free(s);
  s = nest("[", "1", "]", 1000000, &len);
  assert_int_equal(cymg_json_validate(cymg_str_n(s, len)), CYMG_EPARSE);
  free(s);
}

static const char path_doc[] =
    " {\"a\":{\"b\":[10,{\"c\":\"x\"},[1,[2,3]]]},\"k\\u0065y\":true,\"\":1,\"n\":null,"
    "\"dup\":1,\"dup\":2,\"a.b\":5,\"e\\u0301\":\"accent\",\"sp ace\":[]} ";

static int find(const char *path, const char *want_text) {
  cymg_str in = exact(path_doc, sizeof(path_doc) - 1), v = {NULL, 0};
  int rc = cymg_json_find(in, path, &v);
  if (rc > 0) {
    assert_true(v.buf >= in.buf && v.buf + v.len <= in.buf + in.len);
    if (want_text != NULL) {
      assert_int_equal(v.len, strlen(want_text));
      assert_memory_equal(v.buf, want_text, v.len);
    }
  }
  release(in);
  return rc;
}

static void test_find_paths(void **state) {
  (void) state;
  assert_int_equal(find("$", NULL), CYMG_JSON_OBJECT);
  assert_int_equal(find("$.a.b[0]", "10"), CYMG_JSON_NUMBER);
  assert_int_equal(find("$.a.b[1].c", "\"x\""), CYMG_JSON_STRING);
  assert_int_equal(find("$.a.b[1]", "{\"c\":\"x\"}"), CYMG_JSON_OBJECT);
  assert_int_equal(find("$.a.b[2][1][0]", "2"), CYMG_JSON_NUMBER);
  assert_int_equal(find("$.a.b[2][1][1]", "3"), CYMG_JSON_NUMBER);
  assert_int_equal(find("$.key", "true"), CYMG_JSON_BOOL);
  assert_int_equal(find("$.n", "null"), CYMG_JSON_NULL);
  assert_int_equal(find("$.dup", "1"), CYMG_JSON_NUMBER);
  assert_int_equal(find("$.e\xcc\x81", "\"accent\""), CYMG_JSON_STRING);
  assert_int_equal(find("$.sp ace", "[]"), CYMG_JSON_ARRAY);
  /* absent */
  assert_int_equal(find("$.a.b[3]", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.a.b[2][1][2]", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.a.x", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.ke", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.keyy", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.k\\u0065y", NULL), CYMG_ENOTFOUND); /* path keys are not JSON */
  assert_int_equal(find("$.a.b[0].c", NULL), CYMG_ENOTFOUND);   /* into a scalar */
  assert_int_equal(find("$.a.b[1][0]", NULL), CYMG_ENOTFOUND);  /* index into an object */
  assert_int_equal(find("$[0]", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.a.b.c", NULL), CYMG_ENOTFOUND);      /* key into an array */
  assert_int_equal(find("$.n.x", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.a.b[99999999999999999999999999]", NULL), CYMG_ENOTFOUND);
  assert_int_equal(find("$.a.b[00]", "10"), CYMG_JSON_NUMBER);
  /* "a.b" cannot be named by a path: the dot always separates. */
  assert_int_equal(find("$.a.b", "[10,{\"c\":\"x\"},[1,[2,3]]]"), CYMG_JSON_ARRAY);
  /* malformed paths */
  static const char *const bad[] = {"",      "a",     "$.",    "$..a",  "$[",   "$[]",
                                    "$[-1]", "$[1",   "$[a]",  "$a",    "$.a[0", "$.a.",
                                    "$ ",    "$[1]x", "$[+1]", "$[1 ]", "$$",    ".a"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (find(bad[i], NULL) != CYMG_EINVAL) fail_msg("path accepted: '%s'", bad[i]);
  }
  cymg_str in = exact(path_doc, sizeof(path_doc) - 1);
  assert_int_equal(cymg_json_find(in, NULL, NULL), CYMG_EINVAL);
  release(in);
}

static void test_find_invalid_doc(void **state) {
  (void) state;
  static const doc docs[] = {D("{\"a\":1,}"), D("{\"a\":1} x"), D("{\"a\":1,\"b\":[}"),
                             D("{\"a\":1,\"b\":\"\xff\"}"), D("[1,2")};
  for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
    cymg_str in = exact(docs[i].s, docs[i].len);
    assert_int_equal(cymg_json_find(in, "$.a", NULL), CYMG_EPARSE);
    assert_int_equal(cymg_json_find(in, "$[0]", NULL), CYMG_EPARSE);
    int64_t x;
    assert_int_equal(cymg_json_get_int(in, "$.a", &x), CYMG_EPARSE);
    /* A bad path is reported as such even for a bad document. */
    assert_int_equal(cymg_json_find(in, "a", NULL), CYMG_EINVAL);
    release(in);
  }
}

static int get_num(const char *text, double *out) {
  cymg_str in = exact(text, strlen(text));
  int rc = cymg_json_get_num(in, "$", out);
  release(in);
  return rc;
}

static void test_numbers(void **state) {
  (void) state;
  double d;
  assert_int_equal(get_num("0.1", &d), 0);
  assert_true(d == 0.1);
  assert_int_equal(get_num("123.456e-2", &d), 0);
  assert_true(d == 1.23456);
  assert_int_equal(get_num("-2.5E+3", &d), 0);
  assert_true(d == -2500.0);
  assert_int_equal(get_num("-0", &d), 0);
  assert_true(d == 0 && signbit(d));
  assert_int_equal(get_num("0.000", &d), 0);
  assert_true(d == 0 && !signbit(d));
  assert_int_equal(get_num("1.7976931348623157e308", &d), 0);
  assert_true(d == DBL_MAX);
  assert_int_equal(get_num("4.9406564584124654e-324", &d), 0);
  assert_true(d > 0 && d < DBL_MIN);
  assert_int_equal(get_num("1e-999", &d), 0);
  assert_true(d == 0);
  d = 7;
  assert_int_equal(get_num("1e999", &d), CYMG_ERANGE);
  assert_true(d == 7);
  assert_int_equal(get_num("-1e400", &d), CYMG_ERANGE);
  assert_int_equal(get_num("[1]", &d), CYMG_ETYPE);
  assert_int_equal(get_num("\"1\"", &d), CYMG_ETYPE);

  /* Long literals: leading fraction zeros, a 1000-digit integer, and a tail far
   * past the 17th digit that decides rounding (2^53 + 1 + tiny rounds up). */
  char big[2100];
  memcpy(big, "0.", 2);
  memset(big + 2, '0', 1000);
  memcpy(big + 1002, "15", 3);
  assert_int_equal(get_num(big, &d), 0);
  assert_true(d == 0); /* 1.5e-1001 underflows */
  big[0] = '1';
  memset(big + 1, '0', 1000);
  big[1001] = '\0';
  assert_int_equal(get_num(big, &d), CYMG_ERANGE);
  memset(big + 1, '0', 300);
  memcpy(big + 301, "e-300", 6);
  assert_int_equal(get_num(big, &d), 0);
  assert_true(d == 1.0);
  strcpy(big, "9007199254740993");
  memset(big + 16, '0', 1500);
  strcpy(big + 1516, "1e-1501");
  assert_int_equal(get_num(big, &d), 0);
  assert_true(d == 9007199254740994.0);
  assert_int_equal(get_num("9007199254740993", &d), 0);
  assert_true(d == 9007199254740992.0); /* exact tie: to even */
  strcpy(big, "0.");
  memset(big + 2, '0', 2000);
  big[2002] = '\0';
  assert_int_equal(get_num(big, &d), 0);
  assert_true(d == 0);
  assert_int_equal(get_num("1e-99999999999999999999999999", &d), 0);
  assert_true(d == 0);
  assert_int_equal(get_num("0e99999999999999999999999999", &d), 0);
  assert_true(d == 0);
}

static int get_int(const char *text, int64_t *out) {
  cymg_str in = exact(text, strlen(text));
  int rc = cymg_json_get_int(in, "$", out);
  release(in);
  return rc;
}

static void test_ints(void **state) {
  (void) state;
  int64_t x = 5;
  assert_int_equal(get_int("0", &x), 0);
  assert_true(x == 0);
  assert_int_equal(get_int("-0", &x), 0);
  assert_true(x == 0);
  assert_int_equal(get_int("42", &x), 0);
  assert_true(x == 42);
  assert_int_equal(get_int("9223372036854775807", &x), 0);
  assert_true(x == INT64_MAX);
  assert_int_equal(get_int("-9223372036854775808", &x), 0);
  assert_true(x == INT64_MIN);
  x = 5;
  assert_int_equal(get_int("9223372036854775808", &x), CYMG_ERANGE);
  assert_int_equal(get_int("-9223372036854775809", &x), CYMG_ERANGE);
  assert_int_equal(get_int("100000000000000000000000000000", &x), CYMG_ERANGE);
  assert_true(x == 5);
  assert_int_equal(get_int("1.0", &x), CYMG_ETYPE);
  assert_int_equal(get_int("1e3", &x), CYMG_ETYPE);
  assert_int_equal(get_int("100000000000000000000000000000e-20", &x), CYMG_ETYPE);
  assert_int_equal(get_int("\"1\"", &x), CYMG_ETYPE);
  assert_int_equal(get_int("true", &x), CYMG_ETYPE);
  assert_int_equal(get_int("1x", &x), CYMG_EPARSE);
}

static void test_bool_and_types(void **state) {
  (void) state;
  static const char text[] = "{\"t\":true,\"f\":false,\"n\":null}";
  cymg_str in = exact(text, sizeof(text) - 1);
  bool b = false;
  assert_int_equal(cymg_json_get_bool(in, "$.t", &b), 0);
  assert_true(b);
  assert_int_equal(cymg_json_get_bool(in, "$.f", &b), 0);
  assert_false(b);
  assert_int_equal(cymg_json_get_bool(in, "$.n", &b), CYMG_ETYPE);
  assert_int_equal(cymg_json_get_bool(in, "$.x", &b), CYMG_ENOTFOUND);
  cymg_buf buf = {NULL, 0, 0};
  assert_int_equal(cymg_json_get_str(in, "$.t", &buf), CYMG_ETYPE);
  assert_int_equal(cymg_json_get_hex(in, "$.t", &buf), CYMG_ETYPE);
  assert_int_equal(cymg_json_get_b64(in, "$", &buf), CYMG_ETYPE);
  assert_int_equal(buf.len, 0);
  release(in);
}

static void test_get_str(void **state) {
  (void) state;
  static const char text[] = "{\"s\":\"a\\u00e9\\ud834\\udd1e\\n\\\"\\/\\\\\xe2\x82\xac\\u0000z\"}";
  cymg_str in = exact(text, sizeof(text) - 1);
  cymg_buf b = {NULL, 0, 0};
  assert_int_equal(cymg_buf_append(&b, ">", 1), 0);
  static const char want[] = "a\xc3\xa9\xf0\x9d\x84\x9e\n\"/\\\xe2\x82\xac\0z";
  assert_int_equal(cymg_json_get_str(in, "$.s", &b), (int) sizeof(want) - 1);
  assert_int_equal(b.len, sizeof(want));
  assert_memory_equal(b.buf + 1, want, sizeof(want) - 1);
  assert_int_equal(b.buf[b.len], '\0');
  cymg_buf_free(&b);
  release(in);
}

static void test_get_hex_b64(void **state) {
  (void) state;
  static const char text[] =
      "{\"h\":\"0aFf10\",\"odd\":\"abc\",\"bad\":\"0g\",\"esc\":\"\\u0030\\u0031\",\"e\":\"\","
      "\"b\":\"Zm9vYmFy\",\"be\":\"Zm9v\\/w==\",\"bb\":\"Zm9v!\",\"bu\":\"Zm9v_w==\"}";
  cymg_str in = exact(text, sizeof(text) - 1);
  cymg_buf b = {NULL, 0, 0};
  assert_int_equal(cymg_buf_append(&b, "ab", 2), 0);
  assert_int_equal(cymg_json_get_hex(in, "$.h", &b), 3);
  assert_memory_equal(b.buf, "ab\x0a\xff\x10", 5);
  b.len = 2;
  assert_int_equal(cymg_json_get_hex(in, "$.odd", &b), CYMG_EPARSE);
  assert_int_equal(cymg_json_get_hex(in, "$.bad", &b), CYMG_EPARSE);
  assert_int_equal(b.len, 2);
  assert_int_equal(b.buf[2], '\0');
  assert_int_equal(cymg_json_get_hex(in, "$.esc", &b), 1);
  assert_int_equal(b.buf[2], 0x01);
  b.len = 2;
  assert_int_equal(cymg_json_get_hex(in, "$.e", &b), 0);
  assert_int_equal(cymg_json_get_b64(in, "$.b", &b), 6);
  assert_memory_equal(b.buf, "abfoobar", 8);
  b.len = 2;
  assert_int_equal(cymg_json_get_b64(in, "$.be", &b), 4);
  assert_memory_equal(b.buf, "abfoo\xff", 6);
  b.len = 2;
  assert_int_equal(cymg_json_get_b64(in, "$.bb", &b), CYMG_EPARSE);
  assert_int_equal(cymg_json_get_b64(in, "$.bu", &b), CYMG_EPARSE);
  assert_int_equal(cymg_json_get_b64(in, "$.esc", &b), CYMG_EPARSE); /* "01": too short */
  assert_int_equal(b.len, 2);
  assert_int_equal(b.buf[2], '\0');
  cymg_buf_free(&b);
  release(in);
}

static void test_next(void **state) {
  (void) state;
  static const char text[] = "{ \"a\" : 1 , \"b\\n\":[2,3],\"c\":{}}";
  cymg_str in = exact(text, sizeof(text) - 1), k, v;
  size_t off = 0;
  assert_int_equal(cymg_json_next(in, &off, &k, &v), CYMG_JSON_NUMBER);
  assert_int_equal(k.len, 1);
  assert_memory_equal(k.buf, "a", 1);
  assert_memory_equal(v.buf, "1", v.len);
  assert_int_equal(cymg_json_next(in, &off, &k, &v), CYMG_JSON_ARRAY);
  assert_int_equal(k.len, 3);
  assert_memory_equal(k.buf, "b\\n", 3);
  assert_true(cymg_json_str_eq(k, cymg_str_c("b\n")));
  size_t off2 = 0;
  cymg_str k2, v2;
  assert_int_equal(cymg_json_next(v, &off2, &k2, &v2), CYMG_JSON_NUMBER);
  assert_int_equal(k2.len, 0);
  assert_memory_equal(v2.buf, "2", 1);
  assert_int_equal(cymg_json_next(v, &off2, NULL, &v2), CYMG_JSON_NUMBER);
  assert_memory_equal(v2.buf, "3", 1);
  assert_int_equal(cymg_json_next(v, &off2, NULL, &v2), 0);
  assert_int_equal(cymg_json_next(in, &off, &k, &v), CYMG_JSON_OBJECT);
  assert_int_equal(v.len, 2);
  assert_int_equal(cymg_json_next(in, &off, &k, &v), 0);
  assert_int_equal(cymg_json_next(in, &off, &k, &v), 0); /* stays done */
  release(in);

  static const doc empty[] = {D("[]"), D("{}"), D(" [ ] "), D("{ }")};
  for (size_t i = 0; i < 4; i++) {
    in = exact(empty[i].s, empty[i].len);
    off = 0;
    assert_int_equal(cymg_json_next(in, &off, &k, &v), 0);
    release(in);
  }
  static const doc bad[] = {D("[1,]"), D("[1"),   D("{\"a\" 1}"), D("1"),     D(""),
                            D("[1] x"), D("[1 2]"), D("{\"a\":1,}"), D("[01]"), D("{\"a\":1]")};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    in = exact(bad[i].s, bad[i].len);
    off = 0;
    int rc, steps = 0;
    while ((rc = cymg_json_next(in, &off, &k, &v)) > 0) assert_true(++steps < 5);
    if (rc != CYMG_EPARSE) fail_msg("next accepted '%s'", bad[i].s);
    release(in);
  }
  assert_int_equal(cymg_json_next(cymg_str_c("[]"), NULL, &k, &v), CYMG_EINVAL);
}

static void test_unescape_and_eq(void **state) {
  (void) state;
  cymg_buf b = {NULL, 0, 0};
  cymg_str q = exact("\"x\\ty\"", 6), r = exact("x\\ty", 4);
  assert_int_equal(cymg_json_unescape(q, &b), 3);
  assert_int_equal(cymg_json_unescape(r, &b), 3);
  assert_string_equal(b.buf, "x\ty" "x\ty");
  assert_true(cymg_json_str_eq(q, cymg_str_c("x\ty")));
  assert_true(cymg_json_str_eq(r, cymg_str_c("x\ty")));
  assert_false(cymg_json_str_eq(r, cymg_str_c("x\t")));
  assert_false(cymg_json_str_eq(r, cymg_str_c("x\tyy")));
  release(q);
  release(r);
  static const doc bad[] = {D("\""), D("\"abc"), D("a\"b"), D("\\"), D("\\q"), D("\\uD800"),
                            D("\xff"), D("\x01"), D("\"a\"b\"")};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t before = b.len;
    cymg_str in = exact(bad[i].s, bad[i].len);
    assert_int_equal(cymg_json_unescape(in, &b), CYMG_EPARSE);
    assert_int_equal(b.len, before);
    assert_int_equal(b.buf[b.len], '\0');
    assert_false(cymg_json_str_eq(in, cymg_str_n(NULL, 0)));
    release(in);
  }
  assert_int_equal(cymg_json_unescape(cymg_str_c("\"\""), &b), 0);
  assert_true(cymg_json_str_eq(cymg_str_c("\"\""), cymg_str_n(NULL, 0)));
  cymg_buf_free(&b);
}

static void test_escape(void **state) {
  (void) state;
  cymg_buf b = {NULL, 0, 0};
  static const char in[] = "a\"b\\c\n\x01\x1f\x7f \xc3\xa9 \xff \xe2\x82 \xed\xa0\x80 /\b\f\r\t";
  int n = cymg_json_escape(&b, cymg_str_n(in, sizeof(in) - 1));
  static const char want[] =
      "\"a\\\"b\\\\c\\n\\u0001\\u001f\x7f \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd "
      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd /\\b\\f\\r\\t\"";
  assert_int_equal(n, (int) sizeof(want) - 1);
  assert_string_equal(b.buf, want);
  assert_int_equal(cymg_json_validate(cymg_str_n(b.buf, b.len)), CYMG_JSON_STRING);
  cymg_buf_free(&b);

  /* Every byte value round-trips through escape -> validate -> unescape when the
   * input is valid UTF-8. */
  char all[128 + 8];
  for (int i = 0; i < 128; i++) all[i] = (char) i;
  memcpy(all + 128, "\xf0\x9f\x98\x80\xc2\xa0\xdf\xbf", 8);
  assert_true(cymg_json_escape(&b, cymg_str_n(all, sizeof(all))) > 0);
  assert_int_equal(cymg_json_validate(cymg_str_n(b.buf, b.len)), CYMG_JSON_STRING);
  cymg_buf u = {NULL, 0, 0};
  assert_int_equal(cymg_json_unescape(cymg_str_n(b.buf, b.len), &u), (int) sizeof(all));
  assert_memory_equal(u.buf, all, sizeof(all));
  assert_true(cymg_json_str_eq(cymg_str_n(b.buf, b.len), cymg_str_n(all, sizeof(all))));
  cymg_buf_free(&u);
  cymg_buf_free(&b);
  assert_int_equal(cymg_json_escape(&b, cymg_str_n(NULL, 0)), 2);
  assert_string_equal(b.buf, "\"\"");
  cymg_buf_free(&b);
  assert_int_equal(cymg_json_escape(NULL, cymg_str_c("x")), CYMG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_table),     cmocka_unit_test(test_invalid_table),
      cmocka_unit_test(test_prefixes),        cmocka_unit_test(test_depth),
      cmocka_unit_test(test_find_paths),      cmocka_unit_test(test_find_invalid_doc),
      cmocka_unit_test(test_numbers),         cmocka_unit_test(test_ints),
      cmocka_unit_test(test_bool_and_types),  cmocka_unit_test(test_get_str),
      cmocka_unit_test(test_get_hex_b64),     cmocka_unit_test(test_next),
      cmocka_unit_test(test_unescape_and_eq), cmocka_unit_test(test_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
