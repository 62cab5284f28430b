/* MIME types by extension: the common web types, case, odd names, overrides. */
#include "cymg_test.h"

static void expect(const char *path, const char *overrides, const char *want) {
  cymg_str t = cymg_http_mime_type(path, overrides);
  if (t.len != strlen(want) || memcmp(t.buf, want, t.len) != 0)
    fail_msg("%s: got '%.*s', want '%s'", path ? path : "(null)", (int)t.len, t.buf, want);
}

static void test_table(void **state) {
  (void)state;
  static const char *const t[][2] = {
      {"index.html", "text/html; charset=utf-8"},
      {"a.htm", "text/html; charset=utf-8"},
      {"s.css", "text/css; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"mod.mjs", "text/javascript; charset=utf-8"},
      {"d.json", "application/json"},
      {"r.txt", "text/plain; charset=utf-8"},
      {"f.xml", "application/xml"},
      {"i.svg", "image/svg+xml"},
      {"i.png", "image/png"},
      {"i.jpg", "image/jpeg"},
      {"i.jpeg", "image/jpeg"},
      {"i.gif", "image/gif"},
      {"i.webp", "image/webp"},
      {"i.avif", "image/avif"},
      {"favicon.ico", "image/x-icon"},
      {"m.wasm", "application/wasm"},
      {"d.pdf", "application/pdf"},
      {"a.zip", "application/zip"},
      {"a.gz", "application/gzip"},
      {"a.tar", "application/x-tar"},
      {"s.mp3", "audio/mpeg"},
      {"v.mp4", "video/mp4"},
      {"v.webm", "video/webm"},
      {"s.ogg", "audio/ogg"},
      {"s.wav", "audio/wav"},
      {"f.woff", "font/woff"},
      {"f.woff2", "font/woff2"},
      {"f.ttf", "font/ttf"},
      {"f.otf", "font/otf"},
      {"t.csv", "text/csv; charset=utf-8"},
      {"README.md", "text/markdown; charset=utf-8"},
      {"app.js.map", "application/json"},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) expect(t[i][0], NULL, t[i][1]);
}

static void test_names(void **state) {
  (void)state;
  expect("INDEX.HTML", NULL, "text/html; charset=utf-8"); /* extensions ignore case */
  expect("photo.JpG", NULL, "image/jpeg");
  expect("/srv/www/a.b/c.css", NULL, "text/css; charset=utf-8");
  expect("archive.tar.gz", NULL, "application/gzip");           /* the last extension counts */
  expect("/srv/www.d/noext", NULL, "application/octet-stream"); /* dot in a folder */
  expect("Makefile", NULL, "application/octet-stream");
  expect(".bashrc", NULL, "application/octet-stream"); /* hidden, no extension */
  expect("/x/.hidden.css", NULL, "text/css; charset=utf-8");
  expect("trailing.", NULL, "application/octet-stream");
  expect("x.unknownext", NULL, "application/octet-stream");
  expect("", NULL, "application/octet-stream");
  expect(NULL, NULL, "application/octet-stream");
  expect("a.html\xc3\xa9", NULL, "application/octet-stream");
}

static void test_overrides(void **state) {
  (void)state;
  const char *ov = "foo=application/x-foo, html = text/x-mine ,.svg=image/x-svg,bad,=x/y,e=";
  expect("a.foo", ov, "application/x-foo");
  expect("a.FOO", ov, "application/x-foo");
  expect("a.html", ov, "text/x-mine"); /* overrides win over the table */
  expect("a.svg", ov, "image/x-svg");  /* a dot before the extension is allowed */
  expect("a.css", ov, "text/css; charset=utf-8");
  expect("a.e", ov, "application/octet-stream"); /* an empty type is no override */
  expect("a.bad", ov, "application/octet-stream");
  expect("a.fo", ov, "application/octet-stream");
  expect("a.foo", "", "application/octet-stream");
  /* The result points into the override string. */
  cymg_str t = cymg_http_mime_type("x.foo", ov);
  assert_true(t.buf >= ov && t.buf < ov + strlen(ov));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_overrides),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
