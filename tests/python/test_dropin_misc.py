"""http_parse_multipart never raising over content, TlsOpts as plain data, and
the RFC-correct choices kept where the original package differs."""

import http.client

import pytest

import cymongoose
from cymongoose import MG_EV_HTTP_MSG, Manager, TlsOpts, http_parse_multipart

from conftest import in_thread, poll_until

B = b"XyZb0undary"


def part(name, data, filename=None):
    disp = b'form-data; name="' + name + b'"'
    if filename is not None:
        disp += b'; filename="' + filename + b'"'
    return b"--" + B + b"\r\nContent-Disposition: " + disp + b"\r\n\r\n" + data + b"\r\n"


GOOD = part(b"a", b"one") + part(b"f", b"two\r\nlines", b"x.txt") + b"--" + B + b"--\r\n"


def parts_of(body):
    out, ofs = [], 0
    for _ in range(100):  # bounded: a loop that never ends is a failure too
        ofs, p = http_parse_multipart(body, ofs)
        if p is None:
            assert ofs == 0
            return out
        out.append((p["name"], p["filename"], p["body"]))
    pytest.fail("http_parse_multipart did not end")


def test_good_body_still_parses():
    assert parts_of(GOOD) == [("a", "", b"one"), ("f", "x.txt", b"two\r\nlines")]


@pytest.mark.parametrize("body", ids=lambda b: "%d-bytes-%s" % (len(b), b[:12].hex()), argvalues=[
    b"",
    b"\r\n",
    b"--",
    b"----",
    b"plain text, not multipart at all",
    b'{"json": true}',
    b"--" + B,  # a delimiter and nothing else
    b"--" + B + b"\r\n",  # no headers
    b"--" + B + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n",  # no blank line
    b"--" + B + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
    b"--" + B + b"\r\nbroken header line without colon\r\n\r\nx\r\n--" + B + b"--\r\n",
    GOOD.replace(b"\r\n", b"\n"),
    bytes(range(256)) * 4,
    b"\x00" * 64,
])
def test_bad_bodies_give_0_none(body):
    assert http_parse_multipart(body) == (0, None)
    assert http_parse_multipart(bytearray(body)) == (0, None)


def test_truncated_bodies_never_raise():
    for cut in range(len(GOOD)):
        got = parts_of(GOOD[:cut])  # whatever complete parts come first, then the end
        assert len(got) <= 2


@pytest.mark.parametrize("offset", [-1, -1000, len(GOOD), len(GOOD) + 1, 10**9])
def test_offsets_at_or_past_the_end_or_negative(offset):
    assert http_parse_multipart(GOOD, offset) == (0, None)
    assert http_parse_multipart(GOOD, offset=offset) == (0, None)


def test_offset_inside_a_part_does_not_raise():
    for ofs in range(len(GOOD)):
        r = http_parse_multipart(GOOD, ofs)
        assert isinstance(r, tuple) and len(r) == 2


def test_argument_types_still_checked():
    with pytest.raises(TypeError):
        http_parse_multipart(None)
    with pytest.raises(TypeError):
        http_parse_multipart(GOOD, "0")


# ---- TlsOpts ----


def test_tls_opts_defaults_and_root_import():
    assert cymongoose.TlsOpts is TlsOpts and "TlsOpts" in cymongoose.__all__
    t = TlsOpts()
    assert (t.ca, t.cert, t.key, t.name) == (b"", b"", b"", b"")
    assert t.skip_verification is False


def test_tls_opts_conversions():
    t = TlsOpts(ca="-----BEGIN CERTIFICATE-----\n", cert=b"c", key=bytearray(b"k"),
                name="hôst.example", skip_verification=True)
    assert t.ca == b"-----BEGIN CERTIFICATE-----\n"
    assert t.cert == b"c" and t.key == b"k" and t.name == "hôst.example".encode()
    assert all(type(v) is bytes for v in (t.ca, t.cert, t.key, t.name))
    assert t.skip_verification is True
    t = TlsOpts(b"ca", b"cert", b"key", b"name", 1)  # positional, as the signature reads
    assert (t.ca, t.cert, t.key, t.name, t.skip_verification) == (
        b"ca", b"cert", b"key", b"name", True)


def test_tls_opts_assignment_converts_the_same_way():
    t = TlsOpts(ca=b"x")
    t.ca = None
    assert t.ca == b""
    t.cert = "é"
    assert t.cert == "é".encode()
    t.key = memoryview(b"mv")
    assert t.key == b"mv" and type(t.key) is bytes
    t.name = bytearray(b"n")
    assert t.name == b"n" and type(t.name) is bytes
    t.skip_verification = 1
    assert t.skip_verification is True
    t.skip_verification = ""
    assert t.skip_verification is False


@pytest.mark.parametrize("bad", [5, 1.5, [b"x"], {"a": 1}, object()])
def test_tls_opts_rejects_non_bytes_like(bad):
    for field in ("ca", "cert", "key", "name"):
        with pytest.raises(TypeError):
            TlsOpts(**{field: bad})
        t = TlsOpts()
        with pytest.raises(TypeError):
            setattr(t, field, bad)
        assert getattr(t, field) == b""  # unchanged by the failed assignment


# ---- RFC-correct choices kept ----


def test_missing_file_is_404_with_the_custom_page_body(tmp_path):
    (tmp_path / "404.html").write_text("<p>custom not found</p>")

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(data, str(tmp_path), page404=str(tmp_path / "404.html"))

    m = Manager(handler)

    def get():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/nope.txt")
        r = c.getresponse()
        out = r.status, r.read()
        c.close()
        return out

    try:
        port = m.listen("http://127.0.0.1:0").local_addr[1]
        status, body = in_thread(m, get)
    finally:
        m.close()
    assert status == 404  # not 200: the resource does not exist
    assert body == b"<p>custom not found</p>"


def test_basic_auth_with_empty_password_is_user_colon():
    got = {}

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, data.header("Authorization", "none"))

    def client(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            got["auth"] = data.body_bytes
            conn.close()

    m = Manager()
    try:
        port = m.listen("http://127.0.0.1:0", server).local_addr[1]
        c = m.connect("http://127.0.0.1:%d" % port, client)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        c.http_basic_auth("user", "")
        c.send(b"\r\n")
        poll_until(m, lambda: "auth" in got)
    finally:
        m.close()
    assert got["auth"] == b"Basic " + cymongoose.base64_encode(b"user:").encode()
