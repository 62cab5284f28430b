/* Checks shared by the Connection methods, kept apart from the event and
 * threading code: header validation for reply()/reply_json()/ws_upgrade(), and
 * what a wrapper remembers of its connection once the C connection is gone.
 *
 * The header messages follow the contract word for word (spec "Header
 * checks"): the offending name or value is shown as Python's repr() shows it,
 * so a CR or LF in it is visible as \r or \n. */
#include "cymg_py.h"

#include <string.h>

#define NAME_PREFIX "Header name contains illegal character"
#define VALUE_PREFIX "Header value contains illegal character"

/* RFC 9110 5.6.2: a field name is a token. */
static bool tchar(unsigned char ch) {
  return ch > 32 && ch < 127 && strchr("\"(),/:;<=>?@[\\]{}", ch) == NULL;
}

static bool has_crlfnul(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return true;
  return false;
}

/* The str() of a header name or value, or NULL with the exception set. */
static PyObject *as_str(PyObject *o) {
  return PyUnicode_Check(o) ? Py_NewRef(o) : PyObject_Str(o);
}

/* Validates one pair; on success returns a new (name, value) tuple of str. */
static PyObject *check_pair(PyObject *k, PyObject *v) {
  PyObject *ks = as_str(k);
  if (ks == NULL) return NULL;
  PyObject *vs = NULL, *pair = NULL;
  Py_ssize_t kn, vn;
  const char *kb = PyUnicode_AsUTF8AndSize(ks, &kn);
  if (kb == NULL) goto done;
  /* The name first, CR/LF/NUL before the other rules, as the contract orders them. */
  if (has_crlfnul(kb, (size_t) kn)) {
    PyErr_Format(PyExc_ValueError, NAME_PREFIX " (CR, LF, or NUL): %R", ks);
    goto done;
  }
  if (kn == 0) {
    PyErr_Format(PyExc_ValueError, NAME_PREFIX " (a name cannot be empty): %R", ks);
    goto done;
  }
  for (Py_ssize_t i = 0; i < kn; i++) {
    if (!tchar((unsigned char) kb[i])) {
      PyErr_Format(PyExc_ValueError,
                   NAME_PREFIX " (not an RFC 9110 token: no space, ':', controls, "
                               "non-ASCII or \"(),/;<=>?@[\\]{}): %R",
                   ks);
      goto done;
    }
  }
  if ((vs = as_str(v)) == NULL) goto done;
  const char *vb = PyUnicode_AsUTF8AndSize(vs, &vn);
  if (vb == NULL) goto done;
  if (has_crlfnul(vb, (size_t) vn)) {
    PyErr_Format(PyExc_ValueError, VALUE_PREFIX " (CR, LF, or NUL): %R", vs);
    goto done;
  }
  pair = PyTuple_Pack(2, ks, vs);
done:
  Py_DECREF(ks);
  Py_XDECREF(vs);
  return pair;
}

PyObject *cymgpy_headers_check(PyObject *headers, const char *what) {
  return cymgpy_headers_check_as(headers, what, false);
}

PyObject *cymgpy_headers_check_as(PyObject *headers, const char *what, bool pairs) {
  if (headers == NULL || headers == Py_None) return PyList_New(0);
  bool seq = pairs && (PyList_Check(headers) || PyTuple_Check(headers));
  /* A dict or anything with items() (a list has __getitem__ too: not enough). */
  if (!seq && !PyDict_Check(headers) &&
      (PyUnicode_Check(headers) || PyBytes_Check(headers) ||
       !PyObject_HasAttrString(headers, "items"))) {
    return PyErr_Format(PyExc_TypeError, "%s must be a dict of header names to values%s, not %.100s",
                        what, pairs ? " or a list of (name, value) pairs" : "",
                        Py_TYPE(headers)->tp_name);
  }
  PyObject *items = seq ? PySequence_List(headers) : PyMapping_Items(headers);
  if (items == NULL) return NULL;
  Py_ssize_t n = PyList_GET_SIZE(items);
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
    PyObject *kv = PyList_GET_ITEM(items, i);
    if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
      PyErr_Format(PyExc_TypeError, "%s: items() must give (name, value) pairs", what);
      Py_CLEAR(out);
      break;
    }
    PyObject *pair = check_pair(PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1));
    if (pair == NULL) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, i, pair);
  }
  Py_DECREF(items);
  return out;
}

/* ---- closed connections ---- */

void cymgpy_conn_remember(cymgpy_conn *w, const cymg_conn *c) {
  w->last_flags = (cymg_conn_is_client(c) ? CYMGPY_WAS_CLIENT : 0) |
                  (cymg_conn_is_udp(c) ? CYMGPY_WAS_UDP : 0) |
                  (cymg_conn_is_listening(c) ? CYMGPY_WAS_LISTENING : 0);
}
