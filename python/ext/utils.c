/* The module-level utilities: JSON getters, URL parts and encoding, form
 * variables, multipart, glob matching, hashes, base64, CRC-32, clock and
 * randomness. Each is a thin wrapper over the C library.
 *
 * Argument conventions: data arguments take str (used as UTF-8) or any
 * bytes-like object; names and patterns take str; anything else is a TypeError,
 * a negative size a ValueError. "Not found" is None, never an exception. */
#include "cymg_py.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ---- */

int cymgpy_get_bytes(PyObject *obj, Py_buffer *view, const char *what) {
  if (PyUnicode_Check(obj)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s == NULL) return -1;
    /* The UTF-8 form is cached in the str, which the view keeps alive. */
    return PyBuffer_FillInfo(view, obj, (void *) s, n, 1, PyBUF_SIMPLE);
  }
  if (PyObject_CheckBuffer(obj)) return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
  PyErr_Format(PyExc_TypeError, "%s must be str or bytes-like, not %.100s", what,
               Py_TYPE(obj)->tp_name);
  return -1;
}

PyObject *cymgpy_str(const char *buf, size_t len) {
  return PyUnicode_DecodeUTF8(len ? buf : "", (Py_ssize_t) len, "replace");
}

static cymg_str view_str(const Py_buffer *v) { return cymg_str_n(v->buf, (size_t) v->len); }

/* A str argument as a C string without embedded NULs (which would cut it). */
static const char *cstr_arg(PyObject *obj, const char *what) {
  if (!PyUnicode_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(obj)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
  if (s != NULL && strlen(s) != (size_t) n) {
    PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
    return NULL;
  }
  return s;
}

static PyObject *buf_to_str(cymg_buf *b) {
  PyObject *r = cymgpy_str(b->buf, b->len);
  cymg_buf_free(b);
  return r;
}

static PyObject *raise_rc(const char *what, int rc) {
  if (rc == CYMG_ENOMEM) return PyErr_NoMemory();
  return PyErr_Format(PyExc_ValueError, "%s: %s", what, cymg_strerror(rc));
}

/* ---- JSON ---- */

/* Parses (data, path[, default]) for the getters. On success the caller
 * releases *data. */
static int json_args(PyObject *args, PyObject *kwargs, const char *fmt, Py_buffer *data,
                     const char **path, PyObject **dflt) {
  static char *kw2[] = {"data", "path", NULL};
  static char *kw3[] = {"data", "path", "default", NULL};
  PyObject *data_obj, *path_obj;
  int ok = dflt ? PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kw3, &data_obj, &path_obj, dflt)
                : PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kw2, &data_obj, &path_obj);
  if (!ok) return -1;
  if ((*path = cstr_arg(path_obj, "path")) == NULL) return -1;
  return cymgpy_get_bytes(data_obj, data, "data");
}

/* The result for a lookup that failed with rc: the default (or None) when there
 * is no such value of that type, an error for a malformed path. */
static PyObject *json_miss(int rc, PyObject *dflt) {
  if (rc == CYMG_EINVAL) return PyErr_Format(PyExc_ValueError, "malformed JSON path");
  if (rc == CYMG_ENOMEM) return PyErr_NoMemory();
  return Py_NewRef(dflt ? dflt : Py_None);
}

static PyObject *json_get(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  Py_buffer data;
  const char *path;
  if (json_args(args, kwargs, "OO:json_get", &data, &path, NULL) < 0) return NULL;
  cymg_str v;
  int rc = cymg_json_find(view_str(&data), path, &v);
  PyObject *r = rc > 0 ? cymgpy_str(v.buf, v.len) : json_miss(rc, NULL);
  PyBuffer_Release(&data);
  return r;
}

static PyObject *json_get_num(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  Py_buffer data;
  const char *path;
  PyObject *dflt = Py_None;
  if (json_args(args, kwargs, "OO|O:json_get_num", &data, &path, &dflt) < 0) return NULL;
  double d;
  int rc = cymg_json_get_num(view_str(&data), path, &d);
  PyBuffer_Release(&data);
  return rc >= 0 ? PyFloat_FromDouble(d) : json_miss(rc, dflt);
}

static PyObject *json_get_bool(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  Py_buffer data;
  const char *path;
  PyObject *dflt = Py_None;
  if (json_args(args, kwargs, "OO|O:json_get_bool", &data, &path, &dflt) < 0) return NULL;
  bool b;
  int rc = cymg_json_get_bool(view_str(&data), path, &b);
  PyBuffer_Release(&data);
  return rc >= 0 ? PyBool_FromLong(b) : json_miss(rc, dflt);
}

/* Integers of any size come back exact (Python ints are unbounded); a number
 * with a fraction or exponent is truncated toward zero, as the API this one
 * follows does. */
static PyObject *json_get_long(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  Py_buffer data;
  const char *path;
  PyObject *dflt = NULL;
  if (json_args(args, kwargs, "OO|O:json_get_long", &data, &path, &dflt) < 0) return NULL;
  cymg_str json = view_str(&data);
  int64_t i;
  double d;
  PyObject *r;
  int rc = cymg_json_get_int(json, path, &i);
  if (rc >= 0) {
    r = PyLong_FromLongLong(i);
  } else if (rc == CYMG_ERANGE) {
    /* The number is there (it overflowed): read its digits as a Python int. */
    cymg_str v;
    int found = cymg_json_find(json, path, &v);
    char *text = found >= 0 ? cymg_str_dup(v) : NULL;
    if (found < 0) r = dflt ? Py_NewRef(dflt) : PyLong_FromLong(0);
    else r = text ? PyLong_FromString(text, NULL, 10) : PyErr_NoMemory();
    free(text);
  } else if (rc == CYMG_ETYPE && cymg_json_get_num(json, path, &d) >= 0 && isfinite(d)) {
    r = PyLong_FromDouble(trunc(d));
  } else if (rc == CYMG_EINVAL || rc == CYMG_ENOMEM) {
    r = json_miss(rc, NULL);
  } else {
    r = dflt ? Py_NewRef(dflt) : PyLong_FromLong(0);
  }
  PyBuffer_Release(&data);
  return r;
}

static PyObject *json_get_str(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  Py_buffer data;
  const char *path;
  if (json_args(args, kwargs, "OO:json_get_str", &data, &path, NULL) < 0) return NULL;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_json_get_str(view_str(&data), path, &out);
  PyBuffer_Release(&data);
  if (rc < 0) {
    cymg_buf_free(&out);
    return json_miss(rc, NULL);
  }
  return buf_to_str(&out);
}

/* ---- URLs and form data ---- */

/* Parses the url argument of the url_* functions; ValueError when malformed. */
static int url_arg(PyObject *arg, Py_buffer *v, cymg_url *u) {
  if (!PyUnicode_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "url must be a str, not %.100s", Py_TYPE(arg)->tp_name);
    return -1;
  }
  if (cymgpy_get_bytes(arg, v, "url") < 0) return -1;
  if (cymg_url_parse(view_str(v), u) < 0) {
    PyErr_Format(PyExc_ValueError, "malformed URL: %R", arg);
    PyBuffer_Release(v);
    return -1;
  }
  return 0;
}

static PyObject *url_part(PyObject *arg, size_t offset) {
  Py_buffer v;
  cymg_url u;
  if (url_arg(arg, &v, &u) < 0) return NULL;
  const cymg_str *s = (const cymg_str *) ((const char *) &u + offset);
  PyObject *r = cymgpy_str(s->buf, s->len);
  PyBuffer_Release(&v);
  return r;
}

static PyObject *url_host(PyObject *mod, PyObject *arg) {
  (void) mod;
  return url_part(arg, offsetof(cymg_url, host));
}

static PyObject *url_user(PyObject *mod, PyObject *arg) {
  (void) mod;
  return url_part(arg, offsetof(cymg_url, user));
}

static PyObject *url_pass(PyObject *mod, PyObject *arg) {
  (void) mod;
  return url_part(arg, offsetof(cymg_url, pass));
}

static PyObject *url_port(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  cymg_url u;
  if (url_arg(arg, &v, &u) < 0) return NULL;
  PyBuffer_Release(&v);
  return PyLong_FromLong(u.port_num);
}

static PyObject *url_is_ssl(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  cymg_url u;
  if (url_arg(arg, &v, &u) < 0) return NULL;
  bool tls = cymg_url_is_tls(u.scheme);
  PyBuffer_Release(&v);
  return PyBool_FromLong(tls);
}

static PyObject *url_uri(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  cymg_url u;
  if (url_arg(arg, &v, &u) < 0) return NULL;
  cymg_str s = cymg_url_uri(view_str(&v));
  PyObject *r = cymgpy_str(s.buf, s.len);
  PyBuffer_Release(&v);
  /* "http://h?x=1" has the target "?x=1": a request needs the '/' in front. */
  if (r != NULL && s.len && s.buf[0] != '/') Py_SETREF(r, PyUnicode_FromFormat("/%U", r));
  return r;
}

static PyObject *url_encode(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  if (cymgpy_get_bytes(arg, &v, "s") < 0) return NULL;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_url_encode(view_str(&v), &out);
  PyBuffer_Release(&v);
  if (rc < 0) {
    cymg_buf_free(&out);
    return PyErr_NoMemory();
  }
  return buf_to_str(&out);
}

static PyObject *http_var(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  static char *kwlist[] = {"buf", "name", NULL};
  PyObject *buf_obj, *name_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:http_var", kwlist, &buf_obj, &name_obj))
    return NULL;
  const char *name = cstr_arg(name_obj, "name");
  Py_buffer v;
  if (name == NULL || cymgpy_get_bytes(buf_obj, &v, "buf") < 0) return NULL;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_http_var_buf(view_str(&v), name, &out);
  PyBuffer_Release(&v);
  if (rc < 0) {
    cymg_buf_free(&out);
    if (rc == CYMG_ENOMEM) return PyErr_NoMemory();
    Py_RETURN_NONE; /* absent, or a value with a bad %-escape */
  }
  return buf_to_str(&out);
}

/* ---- multipart ---- */

/* The boundary of a multipart body, read from its first delimiter line: the
 * first line starting with "--" (at the start or after a CRLF; anything before
 * is preamble), up to transport padding and CRLF. */
static bool body_boundary(cymg_str body, cymg_str *out) {
  const char *b = body.buf;
  size_t n = body.len;
  for (size_t i = 0; i + 2 <= n;) {
    if (b[i] == '-' && b[i + 1] == '-') {
      size_t j = i + 2;
      while (j < n && b[j] != '\r' && b[j] != ' ' && b[j] != '\t') j++;
      *out = cymg_str_n(b + i + 2, j - i - 2);
      return j > i + 2;
    }
    const char *nl = memchr(b + i, '\n', n - i);
    if (nl == NULL) break;
    i = (size_t) (nl - b) + 1;
  }
  return false;
}

/* Never raises over the content (spec "Multipart"): programs loop `while ofs`
 * and expect an empty, malformed or truncated body, or an offset outside it,
 * to end the loop as (0, None). Only a wrong argument type raises. */
static PyObject *http_parse_multipart(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  static char *kwlist[] = {"body", "offset", NULL};
  PyObject *body_obj;
  Py_ssize_t offset = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:http_parse_multipart", kwlist, &body_obj,
                                   &offset))
    return NULL;
  Py_buffer v;
  if (cymgpy_get_bytes(body_obj, &v, "body") < 0) return NULL;
  cymg_str body = view_str(&v), boundary;
  PyObject *r = NULL;
  cymg_http_part part;
  int64_t next = -1;
  if (offset >= 0 && (size_t) offset < body.len && body_boundary(body, &boundary)) {
    next = cymg_http_multipart_next(body, boundary, (int64_t) offset, &part);
    /* A body with no parts is just the closing "--boundary--". */
    if (next < 0 && boundary.len > 2 && memcmp(boundary.buf + boundary.len - 2, "--", 2) == 0) {
      boundary.len -= 2;
      next = cymg_http_multipart_next(body, boundary, (int64_t) offset, &part);
    }
  }
  if (next == CYMG_ENOMEM) {
    PyErr_NoMemory();
  } else if (next <= 0) { /* the end, or nothing more that can be read as a part */
    r = Py_BuildValue("(iO)", 0, Py_None);
  } else {
    PyObject *name = cymgpy_str(part.name.buf, part.name.len);
    PyObject *filename = name ? cymgpy_str(part.filename.buf, part.filename.len) : NULL;
    PyObject *data = filename ? PyBytes_FromStringAndSize(part.body.len ? part.body.buf : "",
                                                          (Py_ssize_t) part.body.len)
                              : NULL;
    if (data != NULL)
      r = Py_BuildValue("(L{sOsOsO})", (long long) next, "name", name, "filename", filename,
                        "body", data);
    Py_XDECREF(name);
    Py_XDECREF(filename);
    Py_XDECREF(data);
  }
  PyBuffer_Release(&v);
  return r;
}

/* ---- glob matching ---- */

static PyObject *match(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  static char *kwlist[] = {"s", "pattern", NULL};
  PyObject *s_obj, *p_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:match", kwlist, &s_obj, &p_obj)) return NULL;
  Py_buffer s, p;
  if (cymgpy_get_bytes(s_obj, &s, "s") < 0) return NULL;
  if (cymgpy_get_bytes(p_obj, &p, "pattern") < 0) {
    PyBuffer_Release(&s);
    return NULL;
  }
  size_t ncaps = 0;
  for (Py_ssize_t i = 0; i < p.len; i++) {
    char ch = ((const char *) p.buf)[i];
    ncaps += ch == '?' || ch == '*' || ch == '#';
  }
  PyObject *r = NULL;
  cymg_str *caps = PyMem_Calloc(ncaps + 1, sizeof(*caps));
  if (caps == NULL) {
    PyErr_NoMemory();
  } else if (!cymg_match(view_str(&s), view_str(&p), caps, ncaps + 1)) {
    r = Py_BuildValue("(O[])", Py_False);
  } else {
    PyObject *list = PyList_New((Py_ssize_t) ncaps);
    for (size_t i = 0; list != NULL && i < ncaps; i++) {
      PyObject *cap = cymgpy_str(caps[i].buf, caps[i].len);
      if (cap == NULL) Py_CLEAR(list);
      else PyList_SET_ITEM(list, (Py_ssize_t) i, cap);
    }
    if (list != NULL) r = Py_BuildValue("(ON)", Py_True, list);
  }
  PyMem_Free(caps);
  PyBuffer_Release(&s);
  PyBuffer_Release(&p);
  return r;
}

/* ---- hashes and codecs ---- */

typedef int (*digest_fn)(cymg_str, uint8_t *);

static PyObject *digest(PyObject *arg, digest_fn fn, size_t len) {
  Py_buffer v;
  if (cymgpy_get_bytes(arg, &v, "data") < 0) return NULL;
  uint8_t out[CYMG_SHA256_LEN];
  int rc = fn(view_str(&v), out);
  PyBuffer_Release(&v);
  if (rc < 0) return cymgpy_raise_rc("digest", rc);
  return PyBytes_FromStringAndSize((const char *) out, (Py_ssize_t) len);
}

static int md5_fn(cymg_str d, uint8_t *o) { return cymg_md5(d, o); }
static int sha1_fn(cymg_str d, uint8_t *o) { return cymg_sha1(d, o); }
static int sha256_fn(cymg_str d, uint8_t *o) { return cymg_sha256(d, o); }

static PyObject *md5(PyObject *mod, PyObject *arg) {
  (void) mod;
  return digest(arg, md5_fn, CYMG_MD5_LEN);
}

static PyObject *sha1(PyObject *mod, PyObject *arg) {
  (void) mod;
  return digest(arg, sha1_fn, CYMG_SHA1_LEN);
}

static PyObject *sha256(PyObject *mod, PyObject *arg) {
  (void) mod;
  return digest(arg, sha256_fn, CYMG_SHA256_LEN);
}

static PyObject *hmac_sha256(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  static char *kwlist[] = {"key", "data", NULL};
  PyObject *k_obj, *d_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:hmac_sha256", kwlist, &k_obj, &d_obj))
    return NULL;
  Py_buffer k, d;
  if (cymgpy_get_bytes(k_obj, &k, "key") < 0) return NULL;
  if (cymgpy_get_bytes(d_obj, &d, "data") < 0) {
    PyBuffer_Release(&k);
    return NULL;
  }
  uint8_t out[CYMG_SHA256_LEN];
  int rc = cymg_hmac_sha256(view_str(&k), view_str(&d), out);
  PyBuffer_Release(&k);
  PyBuffer_Release(&d);
  if (rc < 0) return cymgpy_raise_rc("hmac_sha256", rc);
  return PyBytes_FromStringAndSize((const char *) out, CYMG_SHA256_LEN);
}

static PyObject *base64_encode(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  if (cymgpy_get_bytes(arg, &v, "data") < 0) return NULL;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_base64_encode(view_str(&v), &out);
  PyBuffer_Release(&v);
  if (rc < 0) {
    cymg_buf_free(&out);
    return raise_rc("base64_encode", rc);
  }
  return buf_to_str(&out);
}

static PyObject *base64_decode(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_buffer v;
  if (cymgpy_get_bytes(arg, &v, "s") < 0) return NULL;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_base64_decode(view_str(&v), &out);
  PyBuffer_Release(&v);
  PyObject *r = NULL;
  if (rc == CYMG_EPARSE) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid base64: expected standard alphabet, padded, no whitespace");
  } else if (rc < 0) {
    raise_rc("base64_decode", rc);
  } else {
    r = PyBytes_FromStringAndSize(out.len ? out.buf : "", (Py_ssize_t) out.len);
  }
  cymg_buf_free(&out);
  return r;
}

static PyObject *crc32(PyObject *mod, PyObject *args, PyObject *kwargs) {
  (void) mod;
  static char *kwlist[] = {"data", "initial", NULL};
  PyObject *d_obj, *init_obj = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:crc32", kwlist, &d_obj, &init_obj))
    return NULL;
  unsigned long initial = 0;
  if (init_obj != NULL) {
    if (!PyLong_Check(init_obj)) {
      return PyErr_Format(PyExc_TypeError, "initial must be an int, not %.100s",
                          Py_TYPE(init_obj)->tp_name);
    }
    initial = PyLong_AsUnsignedLong(init_obj);
    if (PyErr_Occurred() || initial > UINT32_MAX) {
      PyErr_Clear();
      return PyErr_Format(PyExc_ValueError, "initial must be in 0..0xFFFFFFFF");
    }
  }
  Py_buffer v;
  if (cymgpy_get_bytes(d_obj, &v, "data") < 0) return NULL;
  uint32_t crc = cymg_crc32((uint32_t) initial, view_str(&v));
  PyBuffer_Release(&v);
  return PyLong_FromUnsignedLong(crc);
}

/* ---- clock and randomness ---- */

static PyObject *millis(PyObject *mod, PyObject *unused) {
  (void) mod;
  (void) unused;
  return PyLong_FromUnsignedLongLong(cymg_millis());
}

static int size_arg(PyObject *arg, Py_ssize_t *n) {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "n must be an int, not %.100s", Py_TYPE(arg)->tp_name);
    return -1;
  }
  *n = PyLong_AsSsize_t(arg);
  if (*n == -1 && PyErr_Occurred()) return -1;
  if (*n < 0) {
    PyErr_Format(PyExc_ValueError, "n must be >= 0, not %zd", *n);
    return -1;
  }
  return 0;
}

static PyObject *random_bytes(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_ssize_t n;
  if (size_arg(arg, &n) < 0) return NULL;
  PyObject *b = PyBytes_FromStringAndSize(NULL, n);
  if (b == NULL) return NULL;
  int rc = cymg_random_bytes(PyBytes_AS_STRING(b), (size_t) n);
  if (rc < 0) {
    Py_DECREF(b);
    return cymgpy_raise_rc("random_bytes", rc);
  }
  return b;
}

static PyObject *random_str(PyObject *mod, PyObject *arg) {
  (void) mod;
  Py_ssize_t n;
  if (size_arg(arg, &n) < 0) return NULL;
  char *buf = PyMem_Malloc((size_t) n + 1);
  if (buf == NULL) return PyErr_NoMemory();
  int rc = cymg_random_str(buf, (size_t) n);
  PyObject *r = rc < 0 ? cymgpy_raise_rc("random_str", rc)
                       : PyUnicode_DecodeASCII(buf, n, "strict");
  PyMem_Free(buf);
  return r;
}

#define KW (PyCFunction) (void (*)(void))

PyMethodDef cymgpy_util_methods[] = {
    {"json_get", KW json_get, METH_VARARGS | METH_KEYWORDS,
     "json_get(data, path) -> str or None: the raw JSON text of the value at path ($.a[0].b)."},
    {"json_get_num", KW json_get_num, METH_VARARGS | METH_KEYWORDS,
     "json_get_num(data, path, default=None) -> float: a number, else default."},
    {"json_get_bool", KW json_get_bool, METH_VARARGS | METH_KEYWORDS,
     "json_get_bool(data, path, default=None) -> bool: true/false, else default."},
    {"json_get_long", KW json_get_long, METH_VARARGS | METH_KEYWORDS,
     "json_get_long(data, path, default=0) -> int: a number (truncated), else default."},
    {"json_get_str", KW json_get_str, METH_VARARGS | METH_KEYWORDS,
     "json_get_str(data, path) -> str or None: a JSON string, unescaped."},
    {"url_host", url_host, METH_O, "url_host(url) -> str: the host (IPv6 without brackets)."},
    {"url_port", url_port, METH_O, "url_port(url) -> int: the port, or the scheme's default."},
    {"url_user", url_user, METH_O, "url_user(url) -> str: user name (\"\" when none)."},
    {"url_pass", url_pass, METH_O, "url_pass(url) -> str: password (\"\" when none)."},
    {"url_uri", url_uri, METH_O, "url_uri(url) -> str: the request target, \"/\" when none."},
    {"url_is_ssl", url_is_ssl, METH_O, "url_is_ssl(url) -> bool: https, wss or mqtts."},
    {"url_encode", url_encode, METH_O,
     "url_encode(s) -> str: percent-encode all but A-Z a-z 0-9 - . _ ~."},
    {"http_var", KW http_var, METH_VARARGS | METH_KEYWORDS,
     "http_var(buf, name) -> str or None: a decoded variable of a query string or form body."},
    {"http_parse_multipart", KW http_parse_multipart, METH_VARARGS | METH_KEYWORDS,
     "http_parse_multipart(body, offset=0) -> (next_offset, {'name', 'filename', 'body'}), "
     "or (0, None) after the last part; ValueError when malformed."},
    {"match", KW match, METH_VARARGS | METH_KEYWORDS,
     "match(s, pattern) -> (matched, captures): '?' one char, '*' anything but '/', '#' "
     "anything."},
    {"md5", md5, METH_O, "md5(data) -> bytes: 16-byte digest."},
    {"sha1", sha1, METH_O, "sha1(data) -> bytes: 20-byte digest."},
    {"sha256", sha256, METH_O, "sha256(data) -> bytes: 32-byte digest."},
    {"hmac_sha256", KW hmac_sha256, METH_VARARGS | METH_KEYWORDS,
     "hmac_sha256(key, data) -> bytes: 32-byte HMAC-SHA-256."},
    {"base64_encode", base64_encode, METH_O, "base64_encode(data) -> str (standard, padded)."},
    {"base64_decode", base64_decode, METH_O,
     "base64_decode(s) -> bytes; ValueError for anything but strict padded base64."},
    {"crc32", KW crc32, METH_VARARGS | METH_KEYWORDS,
     "crc32(data, initial=0) -> int: CRC-32 as zlib computes it; chain with initial."},
    {"millis", millis, METH_NOARGS, "millis() -> int: monotonic milliseconds."},
    {"random_bytes", random_bytes, METH_O, "random_bytes(n) -> bytes from the OS CSPRNG."},
    {"random_str", random_str, METH_O, "random_str(n) -> str of n random [A-Za-z0-9]."},
    {NULL, NULL, 0, NULL},
};
