#!/usr/bin/env python3
"""Writes the seed corpora of the end-to-end fuzz targets (fuzz_e2e_*) into
tests/fuzz/corpus/<target>/: real requests and answers of the kinds the C tests
send (keep-alive, pipelined, chunked uploads, ranges, conditionals, uploads,
WebSocket upgrades and frames with and without compression, responses with
chunked / sized / close-delimited bodies), each behind the 4 control bytes
described in tests/fuzz/e2e.h. Run it again after changing a seed; the files it
writes are committed so that CI needs no Python step.

    python3 tests/fuzz/make_e2e_corpus.py
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def ctl(conf=0, flags=0, cuts=(0, 0, 0)):
    """The control prefix: configuration (bits 0-1), harness flags, cut ratios."""
    return bytes([(conf & 3) | flags]) + bytes(cuts)


CLOSE_HARD, NO_READ, T4, T5, T6 = 0x04, 0x08, 0x10, 0x20, 0x40
HALF = (128, 128, 128)
THIRDS = (85, 170, 255)
BYTEWISE = (3, 7, 40)


def req(line, *headers, body=b""):
    h = "".join(x + "\r\n" for x in headers)
    return (line + "\r\n" + h + "\r\n").encode() + body


def chunked(*parts, trailer=b""):
    out = b""
    for p in parts:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


def frame(op, payload, fin=True, mask=b"\0\0\0\0", rsv1=False, len64=False):
    """One WebSocket frame; mask None means unmasked (server to client); len64
    uses the 8-byte length form whatever the size (receivers accept it)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if len64:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    elif n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + mask + masked


def deflate(data):
    """permessage-deflate payload: raw deflate, sync flush, the 4-byte tail cut."""
    z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


H = "Host: x"


def http_server():
    s = {}
    s["get_file"] = ctl() + req("GET /a.txt HTTP/1.1", H)
    s["get_index"] = ctl() + req("GET / HTTP/1.1", H)
    s["get_sub"] = ctl() + req("GET /sub/ HTTP/1.1", H) + req("GET /sub HTTP/1.1", H)
    s["listing"] = ctl(2) + req("GET /sub/list/ HTTP/1.1", H) + req("GET /nope HTTP/1.1", H)
    s["gzip"] = ctl() + req("GET /a.txt HTTP/1.1", H, "Accept-Encoding: gzip, deflate;q=0.5")
    s["gzip_q0"] = ctl() + req("GET /a.txt HTTP/1.1", H, "Accept-Encoding: gzip;q=0, *;q=1.000")
    s["gzip_list_forms"] = ctl() + req("GET /a.txt HTTP/1.1", H, "Accept-Encoding: br ,  GZIP ; q=0.001 ,")
    s["range"] = ctl() + req("GET /big.bin HTTP/1.1", H, "Range: bytes=100-199")
    s["range_suffix"] = ctl() + req("GET /a.txt HTTP/1.1", H, "Range: bytes=-5") + req(
        "GET /a.txt HTTP/1.1", H, "Range: bytes=9999-")
    s["range_multi"] = ctl() + req("GET /a.txt HTTP/1.1", H, "Range: bytes=0-1,5-6")
    s["if_range"] = ctl() + req("GET /a.txt HTTP/1.1", H, 'If-Range: "x"', "Range: bytes=1-2")
    s["conditional"] = ctl() + req("GET /a.txt HTTP/1.1", H, 'If-None-Match: "a", *') + req(
        "GET /a.txt HTTP/1.1", H, "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT")
    s["head"] = ctl() + req("HEAD /a.txt HTTP/1.1", H) + req("HEAD /big.bin HTTP/1.1", H)
    s["big_nonreader"] = ctl(0, NO_READ) + req("GET /big.bin HTTP/1.1", H) * 3
    s["big_vanish"] = ctl(0, CLOSE_HARD) + req("GET /big.bin HTTP/1.1", H)
    s["method"] = ctl() + req("DELETE /a.txt HTTP/1.1", H) + req("OPTIONS * HTTP/1.1", H)
    s["traversal"] = ctl() + req("GET /../outside.txt HTTP/1.1", H) + req(
        "GET /%2e%2e/outside.txt HTTP/1.1", H) + req("GET /out-link.txt HTTP/1.1", H) + req(
        "GET /in-link.txt HTTP/1.1", H) + req("GET /sub%2fb.css HTTP/1.1", H) + req(
        "GET /sub/list/.hidden HTTP/1.1", H)
    s["escapes"] = ctl() + req("GET /sp%20ace%2520.js HTTP/1.1", H) + req("GET /empty.txt HTTP/1.1", H)
    s["http10"] = ctl() + req("GET /a.txt HTTP/1.0") + req("GET /b HTTP/1.0", "Connection: keep-alive")
    s["pipelined"] = ctl(0, 0, THIRDS) + req("GET /a.txt HTTP/1.1", H) + req(
        "POST /echo HTTP/1.1", H, "Content-Length: 5", body=b"hello") + req(
        "GET /index.html HTTP/1.1", H, "Connection: close")
    s["echo"] = ctl(0, 0, BYTEWISE) + req("POST /echo HTTP/1.1", H, "Content-Length: 10", body=b"0123456789")
    s["echo_chunked"] = ctl(0, 0, HALF) + req(
        "POST /echo HTTP/1.1", H, "Transfer-Encoding: chunked",
        body=chunked(b"abcdef", b"ghij", trailer=b"X-T: 1\r\n"))
    s["chunk_reply"] = ctl() + req("POST /chunk HTTP/1.1", H, "Content-Length: 9", body=b"abcdefghi")
    s["chunk_reply_10"] = ctl() + req("POST /chunk HTTP/1.0", "Content-Length: 3", body=b"abc")
    s["stream"] = ctl(0, 0, THIRDS) + req(
        "POST /stream HTTP/1.1", H, "Transfer-Encoding: chunked",
        body=chunked(b"a", b"bc", b"def" * 50))
    s["stream_len"] = ctl(0, 0, BYTEWISE) + req("PUT /stream HTTP/1.1", H, "Content-Length: 12", body=b"x" * 12)
    s["stream_tiny_chunks"] = ctl(0, 0, THIRDS) + req(
        "POST /stream HTTP/1.1", H, "Transfer-Encoding: chunked", body=chunked(*[b"z"] * 64))
    s["sse"] = ctl() + req("POST /sse HTTP/1.1", H, "Content-Length: 10", body=b"one\ntwo\r\n3")
    s["expect"] = ctl() + req("POST /echo HTTP/1.1", H, "Expect: 100-continue", "Content-Length: 4", body=b"abcd")
    boundary = "XyZ"
    mp = (b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
          b"Content-Type: text/plain\r\n\r\nfile body\r\n"
          b"--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n--XyZ--\r\n")
    ctype = "Content-Type: multipart/form-data; boundary=" + boundary
    s["form"] = ctl() + req("POST /form HTTP/1.1", H, ctype, "Content-Length: %d" % len(mp), body=mp)
    s["upload"] = ctl(0, 0, HALF) + req("POST /upload HTTP/1.1", H, ctype, "Content-Length: %d" % len(mp), body=mp)
    s["upload_chunked"] = ctl(0, 0, THIRDS) + req(
        "POST /upload HTTP/1.1", H, ctype, "Transfer-Encoding: chunked", body=chunked(mp[:30], mp[30:]))
    s["auth"] = ctl() + req("GET /auth?q=v%20w HTTP/1.1", H, "Authorization: Basic dXNlcjpwYXNz") + req(
        "GET /auth HTTP/1.1", H, "Authorization: Bearer tok")
    s["file"] = ctl(3) + req("GET /file HTTP/1.1", H, "Range: bytes=2-")
    s["limits"] = ctl(1) + req("POST /echo HTTP/1.1", H, "Content-Length: 5000", body=b"y" * 100)
    s["limits_headers"] = ctl(1) + req("GET / HTTP/1.1", H, *["X-%d: v" % i for i in range(10)])
    s["bad_smuggle"] = ctl() + req("POST / HTTP/1.1", H, "Content-Length: 3", "Transfer-Encoding: chunked",
                                   body=b"abc")
    s["bad_chunk"] = ctl() + req("POST /echo HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"zz\r\n")
    s["bad_version"] = ctl() + req("GET / HTTP/2.0", H)
    s["ws_upgrade"] = ctl() + req("GET /ws HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade",
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                  "Sec-WebSocket-Version: 13") + frame(1, b"hello")
    s["close_reply"] = ctl(3) + req("GET /a.txt HTTP/1.1", H) + req("GET /a.txt HTTP/1.1", H)
    write("fuzz_e2e_http_server", s)


KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(*extra):
    return req("GET /ws HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade", KEY,
               "Sec-WebSocket-Version: 13", *extra)


PMD = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


def ws_server():
    s = {}
    s["text"] = ctl(0, 0, HALF) + upgrade() + frame(1, b"hello") + frame(8, b"\x03\xe8bye")
    s["binary_ping"] = ctl() + upgrade() + frame(2, bytes(range(40)), mask=b"\x01\x02\x03\x04") + frame(
        9, b"ping") + frame(10, b"pong")
    s["fragments"] = ctl(0, T4, THIRDS) + upgrade() + frame(1, b"fra", fin=False) + frame(
        9, b"") + frame(0, b"gme", fin=False) + frame(0, b"nts")
    s["len16"] = ctl(0, 0, BYTEWISE) + upgrade() + frame(2, b"q" * 300)
    s["utf8"] = ctl() + upgrade() + frame(1, "héllo ✓ 𝄞".encode())
    s["bad_utf8"] = ctl() + upgrade() + frame(1, b"\xc3\x28")
    s["unmasked"] = ctl() + upgrade() + frame(1, b"x", mask=None)
    s["close_cmd"] = ctl() + upgrade() + frame(1, b"close now")
    s["subprotocol"] = ctl() + upgrade("Sec-WebSocket-Protocol: soap, chat") + frame(1, b"p")
    s["not_ws"] = ctl() + req("GET /other HTTP/1.1", H) + upgrade("Sec-WebSocket-Version: 8")
    s["bad_version"] = ctl() + req("GET /ws HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade", KEY,
                                   "Sec-WebSocket-Version: 8")
    msg = b"compress me " * 8
    for conf in (1, 2, 3):
        s["deflate_%d" % conf] = ctl(conf, 0, HALF) + upgrade(PMD) + frame(1, deflate(msg), rsv1=True) + frame(
            2, deflate(b"\0" * 100), rsv1=True)
    s["deflate_noctx"] = ctl(2) + upgrade(
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
        "server_no_context_takeover; server_max_window_bits=10, permessage-deflate") + frame(
        1, deflate(b"abc"), rsv1=True) + frame(1, deflate(b"abc"), rsv1=True)
    z = deflate(msg)
    s["deflate_frag"] = ctl(1, T4, THIRDS) + upgrade(PMD) + frame(1, z[:5], fin=False, rsv1=True) + frame(
        0, z[5:])
    s["deflate_big"] = ctl(3) + upgrade(PMD) + frame(1, deflate(b"a" * 2000), rsv1=True)
    s["deflate_plain_frame"] = ctl(1) + upgrade(PMD) + frame(1, b"not compressed")
    s["deflate_off_rsv1"] = ctl(0) + upgrade(PMD) + frame(1, deflate(b"x"), rsv1=True)
    s["nonreader_pings"] = ctl(0, NO_READ) + upgrade() + frame(9, b"p" * 125) * 40
    s["vanish"] = ctl(1, CLOSE_HARD) + upgrade(PMD) + frame(1, deflate(msg), rsv1=True)
    write("fuzz_e2e_ws_server", s)


def resp(line, *headers, body=b""):
    return req(line, *headers, body=body)


def http_client():
    s = {}
    s["sized"] = ctl() + resp("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Type: text/plain; charset=utf-8",
                              body=b"hello")
    s["chunked"] = ctl(0, 0, THIRDS) + resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                                            body=chunked(b"hel", b"lo", trailer=b"X-T: 1\r\n"))
    s["close_delimited"] = ctl(0, 0, HALF) + resp("HTTP/1.1 200 OK", "Connection: close", body=b"until the end")
    s["http10"] = ctl() + resp("HTTP/1.0 200 OK", body=b"old style body")
    s["head_then_get"] = ctl(1) + resp("HTTP/1.1 200 OK", "Content-Length: 100") + resp(
        "HTTP/1.1 200 OK", "Content-Length: 2", body=b"ok")
    s["interim"] = ctl(2) + resp("HTTP/1.1 100 Continue") + resp("HTTP/1.1 201 Created", "Content-Length: 0") + resp(
        "HTTP/1.1 204 No Content") + b""
    s["three"] = ctl(3, 0, THIRDS) + resp("HTTP/1.1 200 OK", "Content-Length: 1", body=b"a") + resp(
        "HTTP/1.1 304 Not Modified", "Content-Length: 10") + resp("HTTP/1.1 404 Not Found", "Content-Length: 3",
                                                                  body=b"no\n")
    s["stream_chunked"] = ctl(0, T4, BYTEWISE) + resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                                                      body=chunked(*[b"x"] * 20))
    s["stream_sized"] = ctl(0, T4, HALF) + resp("HTTP/1.1 200 OK", "Content-Length: 300", body=b"y" * 300)
    s["stream_close"] = ctl(0, T4) + resp("HTTP/1.1 200 OK", body=b"z" * 50)
    s["limits"] = ctl(0, T5) + resp("HTTP/1.1 200 OK", "Content-Length: 5000", body=b"w" * 100)
    s["again"] = ctl(0, T6) + resp("HTTP/1.1 200 OK", "Content-Length: 1", body=b"1") * 3
    s["no_reason"] = ctl() + resp("HTTP/1.1 200", "Content-Length: 0")
    s["bad_status"] = ctl() + resp("HTTP/1.1 2000 OK", "Content-Length: 0")
    s["te_gzip"] = ctl() + resp("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked", body=chunked(b"abc"))
    s["te_not_last"] = ctl() + resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip", body=b"raw")
    s["cl_te"] = ctl() + resp("HTTP/1.1 200 OK", "Content-Length: 3", "Transfer-Encoding: chunked", body=b"abc")
    s["switching"] = ctl() + resp("HTTP/1.1 101 Switching Protocols", "Upgrade: x", "Connection: upgrade")
    s["vanish"] = ctl(0, CLOSE_HARD) + resp("HTTP/1.1 200 OK", "Content-Length: 99", body=b"short")
    write("fuzz_e2e_http_client", s)


def ws_client():
    s = {}

    def ok(*extra):
        return resp("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                    "Sec-WebSocket-Accept: @ACCEPT@", *extra)

    un = None  # server frames are not masked
    s["text"] = ctl(0, T4, HALF) + ok() + frame(1, b"hello", mask=un) + frame(8, b"\x03\xe8", mask=un)
    s["binary_ping"] = ctl() + ok() + frame(2, bytes(range(50)), mask=un) + frame(9, b"pi", mask=un)
    s["fragments"] = ctl(0, T4, THIRDS) + ok() + frame(1, b"ab", fin=False, mask=un) + frame(
        10, b"", mask=un) + frame(0, b"cd", mask=un)
    s["len64"] = ctl(0, 0, BYTEWISE) + ok() + frame(2, b"L" * 200, mask=un, len64=True)
    s["masked_by_server"] = ctl() + ok() + frame(1, b"x")
    s["close_cmd"] = ctl(0, T4) + ok() + frame(1, b"close", mask=un)
    s["close_bad_code"] = ctl() + ok() + frame(8, b"\x03\xed", mask=un)
    s["subprotocol"] = ctl(3) + ok("Sec-WebSocket-Protocol: chat") + frame(1, b"p", mask=un)
    s["subprotocol_not_offered"] = ctl(3) + ok("Sec-WebSocket-Protocol: soap")
    s["bad_accept"] = ctl() + resp("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    s["refused"] = ctl() + resp("HTTP/1.1 403 Forbidden", "Content-Length: 2", body=b"no")
    msg = b"squeeze " * 10
    s["deflate"] = ctl(1, T4, HALF) + ok("Sec-WebSocket-Extensions: permessage-deflate") + frame(
        1, deflate(msg), mask=un, rsv1=True) + frame(2, deflate(b"\1" * 40), mask=un, rsv1=True)
    s["deflate_noctx"] = ctl(2, T4) + ok(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11") + frame(
        1, deflate(b"abc"), mask=un, rsv1=True)
    s["deflate_unasked"] = ctl(0) + ok("Sec-WebSocket-Extensions: permessage-deflate")
    s["deflate_bad_param"] = ctl(1) + ok("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7")
    s["deflate_big"] = ctl(3) + ok("Sec-WebSocket-Extensions: permessage-deflate") + frame(
        1, deflate(b"b" * 1000), mask=un, rsv1=True)
    s["frames_with_response"] = ctl(1) + ok("Sec-WebSocket-Extensions: permessage-deflate") + frame(
        1, deflate(b"same packet"), mask=un, rsv1=True)
    s["vanish"] = ctl(1, CLOSE_HARD) + ok() + frame(1, b"bye", mask=un)
    write("fuzz_e2e_ws_client", s)


if __name__ == "__main__":
    http_server()
    ws_server()
    http_client()
    ws_client()
