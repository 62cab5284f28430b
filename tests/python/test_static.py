"""serve_dir / serve_file and http_parse_multipart."""

import http.client
import urllib.request

import pytest

import cymongoose as cm
from cymongoose import MG_EV_HTTP_MSG

from conftest import http_server, in_thread


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "a.txt").write_text("0123456789")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.json").write_text('{"k": 1}')
    (tmp_path / "file.xyz").write_bytes(b"custom type")
    (tmp_path / ".secret").write_text("hidden")
    (tmp_path / "404.html").write_text("<p>custom not found</p>")
    (tmp_path.parent / "outside.txt").write_text("outside the root")
    return tmp_path


def request(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    c.close()
    return out


def test_serve_dir(site):
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, str(site), extra_headers="X-Served: yes",
                           mime_types="xyz=application/x-custom", page404=str(site / "404.html"))

    m, port = http_server(handler)

    def client():
        r = {}
        r["index"] = request(port, "GET", "/")
        r["txt"] = request(port, "GET", "/a.txt")
        r["json"] = request(port, "GET", "/sub/data.json")
        r["xyz"] = request(port, "GET", "/file.xyz")
        r["range"] = request(port, "GET", "/a.txt", {"Range": "bytes=2-4"})
        etag = r["txt"][1]["etag"]
        r["304"] = request(port, "GET", "/a.txt", {"If-None-Match": etag})
        r["head"] = request(port, "HEAD", "/a.txt")
        r["post"] = request(port, "POST", "/a.txt")
        r["missing"] = request(port, "GET", "/nope.txt")
        r["dots"] = request(port, "GET", "/../outside.txt")
        r["encoded"] = request(port, "GET", "/%2e%2e/outside.txt")
        r["hidden"] = request(port, "GET", "/.secret")
        return r

    try:
        r = in_thread(m, client)
    finally:
        m.close()
    st, h, body = r["index"]
    assert st == 200 and body == b"<h1>home</h1>" and h["content-type"].startswith("text/html")
    assert h["x-served"] == "yes"
    st, h, body = r["txt"]
    assert st == 200 and body == b"0123456789" and h["content-type"].startswith("text/plain")
    assert "etag" in h and "last-modified" in h
    assert r["json"][2] == b'{"k": 1}' and "json" in r["json"][1]["content-type"]
    assert r["xyz"][1]["content-type"] == "application/x-custom"
    st, h, body = r["range"]
    assert st == 206 and body == b"234" and h["content-range"] == "bytes 2-4/10"
    assert r["304"][0] == 304 and r["304"][2] == b""
    assert r["head"][0] == 200 and r["head"][2] == b"" and r["head"][1]["content-length"] == "10"
    assert r["post"][0] == 405
    for key in ("missing", "dots", "encoded", "hidden"):
        st, _, body = r[key]
        assert st in (403, 404), key
        assert b"outside the root" not in body and b"hidden" not in body
    assert r["missing"][2] == b"<p>custom not found</p>"


# Accept-Encoding values in the list forms of RFC 9110 5.6.1 and weights of
# 12.4.2 -> whether the .gz sibling is sent. Empty list elements once crashed
# the server (",gzip"). A malformed weight makes its element not acceptable.
ACCEPT_ENCODING_CASES = [
    (b",gzip", True), (b",", False), (b", ;q=0", False), (b"gzip,,", True),
    (b" , gzip , ", True), (b";q=1, gzip", True), (b"", False),
    (b"gzip ; q=0.5", True), (b"gzip\t;\tq=1", True),
    (b"gzip;q=0", False), (b"gzip;q=0.000", False), (b"gzip;q=0.001", True),
    (b"gzip;q=1", True), (b"gzip;q=1.000", True),
    (b"gzip;q=1.5", False), (b"gzip;q=0.0001", False), (b"gzip;q=abc", False),
    (b"GZIP", True), (b"X-Gzip", True), (b"*", True), (b"*;q=0", False),
    (b"gzip;q=0, *", False), (b"identity", False), (b"identity;q=0, gzip", True),
    (b"gzip;q=0.5, identity", False),
]


def raw_get(port, path, accept_encoding):
    """One GET with the exact Accept-Encoding bytes; returns (status, headers, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Accept-Encoding:" + accept_encoding + b"\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 "), data
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def test_serve_dir_accept_encoding_lists(site):
    (site / "app.js").write_bytes(b"plain js")
    (site / "app.js.gz").write_bytes(b"\x1f\x8b fake gzip")

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, str(site))

    m, port = http_server(handler)

    def client():
        out = []
        for value, _ in ACCEPT_ENCODING_CASES:
            out.append((raw_get(port, b"/app.js", value), raw_get(port, b"/a.txt", value)))
        return out

    try:
        results = in_thread(m, client)
    finally:
        m.close()
    for (value, gzip), (gz_file, plain_file) in zip(ACCEPT_ENCODING_CASES, results):
        st, h, body = gz_file
        assert st == 200, value
        assert h.get(b"content-encoding") == (b"gzip" if gzip else None), value
        assert body == (b"\x1f\x8b fake gzip" if gzip else b"plain js"), value
        st, h, body = plain_file
        assert (st, body, h.get(b"content-encoding")) == (200, b"0123456789", None), value


def test_if_modified_since_in_the_future_is_ignored(site):
    # RFC 9110 13.1.3: a date later than the server's clock is invalid, so it
    # is ignored: the whole file, not 304.
    import email.utils
    import time

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, str(site))

    m, port = http_server(handler)
    tomorrow = email.utils.formatdate(time.time() + 86400, usegmt=True)

    def client():
        lm = request(port, "GET", "/a.txt")[1]["last-modified"]
        return (request(port, "GET", "/a.txt", {"If-Modified-Since": lm}),
                request(port, "GET", "/a.txt", {"If-Modified-Since": tomorrow}),
                request(port, "GET", "/a.txt",
                        {"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 GMT"}))

    try:
        same, future, far = in_thread(m, client)
    finally:
        m.close()
    assert same[0] == 304
    assert future[0] == 200 and future[2] == b"0123456789"
    assert far[0] == 200 and far[2] == b"0123456789"


def test_serve_dir_accepts_pathlike_and_keep_alive(site):
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, site)  # a pathlib.Path

    m, port = http_server(handler)

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out = []
        for path in ("/a.txt", "/sub/data.json", "/a.txt"):
            c.request("GET", path)
            r = c.getresponse()
            out.append((r.status, r.read()))
        c.close()
        return out

    try:
        out = in_thread(m, client)
    finally:
        m.close()
    assert out == [(200, b"0123456789"), (200, b'{"k": 1}'), (200, b"0123456789")]


def test_serve_file(site):
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            if data.uri == "/report":
                conn.serve_file(data, site / "sub" / "data.json", extra_headers="X-A: 1\r\n")
            elif data.uri == "/custom":
                conn.serve_file(data, str(site / "file.xyz"), mime_types="xyz=text/x-mine")
            else:
                conn.serve_file(data, str(site / "does-not-exist"))

    m, port = http_server(handler)

    def client():
        return [request(port, "GET", p) for p in ("/report", "/custom", "/gone")]

    try:
        report, custom, gone = in_thread(m, client)
    finally:
        m.close()
    assert report[0] == 200 and report[2] == b'{"k": 1}' and report[1]["x-a"] == "1"
    assert custom[1]["content-type"].startswith("text/x-mine")
    assert gone[0] == 404


def test_serve_large_file(tmp_path):
    blob = bytes(range(256)) * (16 * 1024)  # 4 MiB, sent as the socket drains
    (tmp_path / "big.bin").write_bytes(blob)

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, str(tmp_path))

    m, port = http_server(handler)
    try:
        st, h, body = in_thread(m, lambda: request(port, "GET", "/big.bin"))
    finally:
        m.close()
    assert st == 200 and body == blob


def test_serve_argument_errors(site):
    kept, errors = [], []

    def handler(conn, ev, data):
        if ev != MG_EV_HTTP_MSG:
            return
        if kept:
            for bad, exc in ((lambda: conn.serve_dir(kept[0], str(site)), ValueError),
                             (lambda: conn.serve_dir("not a message", str(site)), TypeError),
                             (lambda: conn.serve_file(data, 42), TypeError),
                             (lambda: conn.serve_dir(data, str(site), extra_headers=1),
                              TypeError)):
                try:
                    bad()
                except exc:
                    errors.append(exc)
            conn.reply(200, b"checked")
        else:
            kept.append(data)
            conn.reply(200, b"first")

    m, port = http_server(handler)
    try:
        in_thread(m, lambda: [request(port, "GET", "/"), request(port, "GET", "/")])
    finally:
        m.close()
    assert errors == [ValueError, TypeError, TypeError, TypeError]


def test_serve_on_non_http_connection_raises(mgr, site):
    captured = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            captured.append(data)
            conn.reply(200)

    # an HttpMessage is needed first; then a plain TCP connection is refused
    m, port = http_server(handler)
    try:
        in_thread(m, lambda: request(port, "GET", "/"))
    finally:
        m.close()
    lsn = mgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(ValueError):  # the stale message is refused first
        lsn.serve_dir(captured[0], str(site))


# ---- multipart ----

BOUNDARY = "----cymgBoundary42"


def multipart_body(parts, preamble=b""):
    out = preamble
    for name, filename, data in parts:
        out += b"--" + BOUNDARY.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + BOUNDARY.encode() + b"--\r\n"


def all_parts(body):
    parts, ofs = [], 0
    while True:
        ofs, part = cm.http_parse_multipart(body, ofs)
        if part is None:
            assert ofs == 0
            return parts
        parts.append(part)


PARTS = [("field", None, b"value one"),
         ("upload", "a.bin", bytes(range(256)) + b"\r\n--not-the-boundary\r\n"),
         ("empty", None, b""),
         ("text", "notes.txt", "héllo".encode())]


def test_http_parse_multipart():
    body = multipart_body(PARTS)
    parts = all_parts(body)
    assert parts == [{"name": n, "filename": f or "", "body": d} for n, f, d in PARTS]
    assert all_parts(body.decode("latin-1").encode("latin-1")) == parts
    assert all_parts(multipart_body(PARTS, preamble=b"ignored preamble\r\n")) == parts
    assert all_parts(bytearray(body)) == parts
    first_ofs, first = cm.http_parse_multipart(body)
    assert first["name"] == "field" and first_ofs > 0
    assert cm.http_parse_multipart(body, offset=first_ofs)[1]["name"] == "upload"
    assert all_parts(multipart_body([])) == []


def test_http_parse_multipart_errors():
    """Bad content ends the loop (more cases in test_dropin_misc.py); bad types raise."""
    body = multipart_body(PARTS)
    for bad in (b"", b"no boundary here", body.replace(b"\r\n", b"\n")):
        assert cm.http_parse_multipart(bad) == (0, None)
    assert cm.http_parse_multipart(body, -1) == (0, None)
    assert cm.http_parse_multipart(body, len(body) + 1) == (0, None)
    with pytest.raises(TypeError):
        cm.http_parse_multipart(None)


def test_multipart_upload_through_the_server():
    got = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            assert data.header_var("Content-Type", "boundary") == BOUNDARY
            got["parts"] = all_parts(data.body_bytes)
            conn.reply_json([p["name"] for p in got["parts"]])

    m, port = http_server(handler)
    body = multipart_body(PARTS)

    def client():
        req = urllib.request.Request(
            "http://127.0.0.1:%d/upload" % port, data=body, method="POST",
            headers={"Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    try:
        names = in_thread(m, client)
    finally:
        m.close()
    assert names == b'["field", "upload", "empty", "text"]'
    assert got["parts"][1]["body"] == PARTS[1][2]
