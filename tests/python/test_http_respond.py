"""Connection.http_respond() and http_set_limits(): replies with exactly the
headers given, complete, chunked or of a declared length, over real sockets."""

import http.client

import pytest

from cymongoose import MG_EV_HTTP_MSG

from conftest import http_server, in_thread


def serve(answer):
    errors = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            try:
                answer(conn, data.uri)
            except Exception as e:  # recorded for the test, then answered
                errors.append(e)
                if not conn.is_closing:
                    conn.reply(599, str(e))

    mgr, port = http_server(handler)
    return mgr, port, errors


def fetch(mgr, port, paths):
    def run():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out = []
        for p in paths:
            c.request("GET", p)
            r = c.getresponse()
            out.append((r.status, r.getheaders(), r.read()))
        c.close()
        return out

    return in_thread(mgr, run)


def test_exact_headers_complete_chunked_and_sized():
    def answer(conn, uri):
        pairs = [("X-B", "1"), ("Set-Cookie", "a=1"), ("x-a", "2"), ("Set-Cookie", "b=2")]
        if uri == "/complete":
            conn.http_respond(202, pairs, b"whole")
        elif uri == "/chunked":
            conn.http_respond(200, {"X-Kind": "chunked"})
            conn.http_chunk(b"ab")
            conn.http_chunk(b"cd")
            conn.http_chunk(b"")
        elif uri == "/sized":
            conn.http_respond(200, (("X-Kind", "sized"),), None, 6)
            conn.http_chunk(b"abc")
            with pytest.raises(RuntimeError):
                conn.http_chunk(b"toolong")  # beyond the length: refused, nothing sent
            conn.http_chunk(b"def")
            with pytest.raises(RuntimeError):
                conn.http_respond(200, None, b"again")  # already answered

    mgr, port, errors = serve(answer)
    try:
        (a, b, c) = fetch(mgr, port, ["/complete", "/chunked", "/sized"])
    finally:
        mgr.close()
    assert errors == []
    assert a[0] == 202 and a[2] == b"whole"
    mine = [(k, v) for k, v in a[1] if k in ("X-B", "Set-Cookie", "x-a")]
    assert mine == [("X-B", "1"), ("Set-Cookie", "a=1"), ("x-a", "2"), ("Set-Cookie", "b=2")]
    assert ("Content-Length", "5") in a[1]
    assert not [k for k, _ in a[1] if k == "Content-Type"]  # no default added
    assert b[2] == b"abcd" and ("Transfer-Encoding", "chunked") in b[1]
    assert c[2] == b"abcdef" and ("Content-Length", "6") in c[1]
    assert not [k for k, _ in c[1] if k == "Transfer-Encoding"]


def test_bad_headers_and_states():
    def answer(conn, uri):
        with pytest.raises(ValueError):
            conn.http_respond(200, [("X-A", "v\r\nInjected: 1")], b"")
        with pytest.raises(TypeError):
            conn.http_respond(200, "X-A: 1", b"")
        with pytest.raises(ValueError):
            conn.http_respond(100, None, b"")
        conn.http_respond(200, [], b"fine")

    mgr, port, errors = serve(answer)
    try:
        (r,) = fetch(mgr, port, ["/"])
        lsn = [c for c in mgr.connections if c.is_listening][0]
        with pytest.raises(RuntimeError):
            lsn.http_respond(200, None, b"")
        with pytest.raises(ValueError):
            lsn.http_set_limits(max_head=-1)
    finally:
        mgr.close()
    assert errors == [] and r[0] == 200 and r[2] == b"fine"


def test_set_limits_on_listener_gives_413():
    mgr, port, errors = serve(lambda conn, uri: conn.http_respond(200, [], b"ok"))
    try:
        lsn = [c for c in mgr.connections if c.is_listening][0]
        lsn.http_set_limits(max_body=10)

        def run():
            out = []
            for n in (10, 11):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("POST", "/", body=b"x" * n)
                r = c.getresponse()
                out.append((r.status, r.read()))
                c.close()
            return out

        ok, big = in_thread(mgr, run)
    finally:
        mgr.close()
    assert ok == (200, b"ok") and big[0] == 413
