/* MIME types by file extension. The table covers what web servers are asked to
 * serve today; text types carry charset=utf-8 because browsers otherwise guess a
 * legacy encoding for text/plain and friends. */
#include <string.h>

#include "cymg/http.h"
#include "cymg/str.h"

typedef struct mime_entry {
  const char *ext;
  const char *type;
} mime_entry;

/* Types follow the IANA registry where one exists (text/javascript per RFC
 * 9239, the font types of RFC 8081), else the type browsers expect. */
static const mime_entry mime_table[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"shtml", "text/html; charset=utf-8"},
    {"xhtml", "application/xhtml+xml"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"cjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"jsonld", "application/ld+json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"text", "text/plain; charset=utf-8"},
    {"log", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"markdown", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"tsv", "text/tab-separated-values; charset=utf-8"},
    {"ics", "text/calendar; charset=utf-8"},
    {"vtt", "text/vtt; charset=utf-8"},
    {"xml", "application/xml"},
    {"xsl", "application/xml"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"svg", "image/svg+xml"},
    {"svgz", "image/svg+xml"},
    {"png", "image/png"},
    {"apng", "image/apng"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"jfif", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"heic", "image/heic"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ico", "image/x-icon"},
    {"cur", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"rtf", "application/rtf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"zst", "application/zstd"},
    {"7z", "application/x-7z-compressed"},
    {"rar", "application/vnd.rar"},
    {"jar", "application/java-archive"},
    {"mp3", "audio/mpeg"},
    {"m4a", "audio/mp4"},
    {"aac", "audio/aac"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"wav", "audio/wav"},
    {"flac", "audio/flac"},
    {"weba", "audio/webm"},
    {"mid", "audio/midi"},
    {"midi", "audio/midi"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"mpeg", "video/mpeg"},
    {"mpg", "video/mpeg"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mov", "video/quicktime"},
    {"avi", "video/x-msvideo"},
    {"mkv", "video/x-matroska"},
    {"ts", "video/mp2t"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"epub", "application/epub+zip"},
    {"sh", "application/x-sh"},
    {"bin", "application/octet-stream"},
    {"exe", "application/octet-stream"},
    {"iso", "application/octet-stream"},
    {"dmg", "application/octet-stream"},
    {"deb", "application/vnd.debian.binary-package"},
    {"apk", "application/vnd.android.package-archive"},
};

static const char default_type[] = "application/octet-stream";

/* Looks ext up in an override list "ext=type,ext2=type2". Blanks around items
 * are ignored and an extension may be written with its dot (".svg=..."). */
static bool find_override(cymg_str ext, const char *overrides, cymg_str *type) {
  cymg_str rest = cymg_str_c(overrides), item;
  while (cymg_str_split(&rest, ',', &item)) {
    const char *eq = memchr(item.buf, '=', item.len);
    if (eq == NULL) continue;
    cymg_str k = cymg_str_trim(cymg_str_n(item.buf, (size_t)(eq - item.buf)));
    cymg_str v = cymg_str_trim(cymg_str_n(eq + 1, item.len - (size_t)(eq - item.buf) - 1));
    if (k.len > 0 && k.buf[0] == '.') k = cymg_str_n(k.buf + 1, k.len - 1);
    if (v.len > 0 && cymg_str_case_eq(k, ext)) {
      *type = v;
      return true;
    }
  }
  return false;
}

cymg_str cymg_http_mime_type(const char *path, const char *overrides) {
  cymg_str ext = {NULL, 0};
  if (path != NULL) {
    /* The extension is what follows the last dot of the last path component;
     * a leading dot only marks a hidden file (".bashrc" has no extension). */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base) ext = cymg_str_c(dot + 1);
  }
  if (ext.len == 0) return cymg_str_c(default_type);
  cymg_str t;
  if (overrides != NULL && find_override(ext, overrides, &t)) return t;
  for (size_t i = 0; i < sizeof(mime_table) / sizeof(mime_table[0]); i++) {
    if (cymg_str_case_eq(ext, cymg_str_c(mime_table[i].ext))) return cymg_str_c(mime_table[i].type);
  }
  return cymg_str_c(default_type);
}
