"""Memory stays flat: many connections and many managers leave nothing behind.

Python allocations are measured with tracemalloc, C allocations through the
resident set size. The thresholds are generous: they are there to catch a leak
per object (10,000 leaked wrappers or buffers would be far above them), not to
measure the allocator."""

import gc
import os
import resource
import time
import tracemalloc

from cymongoose import MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_CONNECT, Manager

from conftest import poll_until

PAGE = resource.getpagesize()
# ASan keeps freed memory in quarantine, so RSS says nothing under it.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def assert_flat(label, warm_up, measure, rss_limit=8 * 1024 * 1024, rss_ratio=None, settle=None):
    """Runs warm_up() (allocator pools, lazy imports), then measure() under
    tracemalloc, and asserts that neither Python allocations nor the resident
    set grew past the limits. With rss_ratio, the resident set must come back
    under rss_ratio times what it was before measure() instead. settle(cond),
    when given, runs after measure() and may poll until cond() is true (a
    bounded wait: memory is given back when the loop goes idle)."""
    warm_up()
    gc.collect()
    tracemalloc.start()
    try:
        py_before = tracemalloc.get_traced_memory()[0]
        rss_before = rss_bytes()
        limit = rss_limit if rss_ratio is None else (rss_ratio - 1) * rss_before
        measure()
        gc.collect()
        if settle is not None and not UNDER_ASAN:
            settle(lambda: rss_bytes() - rss_before < limit)
        py_growth = tracemalloc.get_traced_memory()[0] - py_before
        rss_growth = rss_bytes() - rss_before
    finally:
        tracemalloc.stop()
    print("%s: python %+d bytes, rss %+d bytes (from %d)" % (label, py_growth, rss_growth,
                                                            rss_before))
    assert py_growth < 64 * 1024, py_growth
    assert UNDER_ASAN or rss_growth < limit, (rss_growth, rss_before)


def churn_connections(m, lsn, total, batch=100):
    """Opens `total` client connections to lsn (2 * total connections in all:
    each accepted one too) and closes them, `batch` at a time."""
    port = lsn.local_addr[1]
    for _ in range(total // batch):
        counts = {"conn": 0, "acc": 0, "closed": 0}

        def client(conn, ev, data):
            if ev == MG_EV_CONNECT:
                counts["conn"] += 1
                conn.send(b"x")
                conn.drain()
            elif ev == MG_EV_CLOSE:
                counts["closed"] += 1

        for _ in range(batch):
            m.connect("tcp://127.0.0.1:%d" % port, client)
        poll_until(m, lambda: counts["closed"] == batch and len(m.connections) == 1,
                   timeout=30, step_ms=5)
        assert counts["conn"] == batch


def test_ten_thousand_connections_leave_memory_flat():
    accepted = [0]

    def server(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            accepted[0] += 1
            conn.userdata = bytearray(64)  # something per connection to leak if we could

    m = Manager(server)
    lsn = m.listen("tcp://127.0.0.1:0")
    try:
        assert_flat("10k connections", lambda: churn_connections(m, lsn, 1000),
                    lambda: churn_connections(m, lsn, 5000))  # 5,000 each side
    finally:
        m.close()
    assert accepted[0] == 6000


def test_rss_comes_back_after_ten_thousand_connections_close():
    """10,000 connections open at once (5,000 clients of an HTTP server in the
    same manager, and the 5,000 it accepted), one request each, then all
    closed: the resident set must come back to within 2x of where it was.
    Before the manager trimmed the heap when idle it stayed at its peak:
    28 MB -> 118 MB (docs/design.md)."""
    from cymongoose import MG_EV_HTTP_MSG

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"hello " + data.uri.encode())

    m = Manager(server)
    port = m.listen("http://127.0.0.1:0").local_addr[1]
    peak = [0]

    def wave(n):
        st = {"msg": 0, "closed": 0}

        def client(conn, ev, data):
            if ev == MG_EV_CONNECT:
                conn.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            elif ev == MG_EV_HTTP_MSG:
                assert data.status() == 200
                st["msg"] += 1
            elif ev == MG_EV_CLOSE:
                st["closed"] += 1

        conns = [m.connect("http://127.0.0.1:%d" % port, client) for _ in range(n)]
        poll_until(m, lambda: st["msg"] == n, timeout=120, step_ms=5)
        assert len(m.connections) == 2 * n + 1  # all open at once
        peak[0] = max(peak[0], rss_bytes())
        for c in conns:
            c.close()
        del conns
        poll_until(m, lambda: st["closed"] == n and len(m.connections) == 1,
                   timeout=120, step_ms=5)

    def settle(cond):
        # The trim runs when a wait finds nothing to do, at most once a second.
        deadline = time.monotonic() + 10
        while not cond() and time.monotonic() < deadline:
            m.poll(50)

    try:
        assert_flat("10k connections at once", lambda: wave(100), lambda: wave(5000),
                    rss_ratio=2, settle=settle)
    finally:
        m.close()
    print("peak rss %d" % peak[0])


def test_thousand_managers_leave_memory_flat():
    def cycle(n):
        for i in range(n):
            m = Manager(lambda c, ev, d: None, enable_wakeup=(i % 2 == 0))
            lsn = m.listen("tcp://127.0.0.1:0")
            lsn.userdata = m  # a cycle through the connection, broken by close()
            m.timer_add(1000, lambda: None, repeat=True)
            m.poll(0)
            m.close()

    fds_before = len(os.listdir("/proc/self/fd"))
    assert_flat("1k managers", lambda: cycle(200), lambda: cycle(1000))
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # no descriptor leaks


def test_unclosed_managers_are_reclaimed_by_gc():
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(300):
        m = Manager()
        m.listen("udp://127.0.0.1:0").userdata = m  # a cycle through C, never closed
        del m
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds_before


def test_ten_thousand_http_requests_leave_memory_flat():
    """HTTP requests with keep-alive from the binding's own client: every
    request makes an HttpMessage on each side, the server replies (plain,
    JSON and chunked), the client reads headers and body."""
    from cymongoose import MG_EV_HTTP_MSG

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            kind = data.query_var("k")
            if kind == "json":
                conn.reply_json({"uri": data.uri, "n": len(data.body_bytes)})
            elif kind == "chunk":
                conn.http_chunk(data.body_text)
                conn.http_chunk(b"")
            else:
                conn.reply(200, data.body_bytes, {"X-Hdr": data.header("X-Req", "")})

    m = Manager(server)
    port = m.listen("http://127.0.0.1:0").local_addr[1]
    kinds = ("plain", "json", "chunk")

    def run(total, clients=10):
        done = {"n": 0, "closed": 0}
        per = total // clients

        def send(conn):
            i = conn.userdata
            conn.send(b"POST /r?k=%s HTTP/1.1\r\nHost: x\r\nX-Req: %d\r\n"
                      b"Content-Length: 5\r\n\r\nhello" % (kinds[i % 3].encode(), i))

        def client(conn, ev, data):
            if ev == MG_EV_CONNECT:
                conn.userdata = 0
                send(conn)
            elif ev == MG_EV_HTTP_MSG:
                assert data.status() == 200 and data.body_bytes and data.headers()
                done["n"] += 1
                conn.userdata += 1
                if conn.userdata == per:
                    conn.close()
                else:
                    send(conn)
            elif ev == MG_EV_CLOSE:
                done["closed"] += 1

        for _ in range(clients):
            m.connect("http://127.0.0.1:%d" % port, client)
        poll_until(m, lambda: done["closed"] == clients and len(m.connections) == 1,
                   timeout=60, step_ms=5)
        assert done["n"] == total

    try:
        assert_flat("10k HTTP requests", lambda: run(2000), lambda: run(10000))
    finally:
        m.close()


def test_utilities_and_rpc_leave_memory_flat():
    import json

    import cymongoose as cm

    rpc = cm.Rpc(error_handler=lambda e: None)
    rpc.add("ok", lambda req: req.ok(req.params))
    rpc.add("boom", lambda req: 1 / 0)
    doc = '{"a": {"b": [1, 2.5, "s"]}, "t": true}'

    def cycle(n):
        for i in range(n):
            cm.json_get(doc, "$.a.b"), cm.json_get_num(doc, "$.a.b[1]")
            cm.json_get_long(doc, "$.a.b[1]"), cm.json_get_bool(doc, "$.t")
            cm.json_get_str(doc, "$.a.b[2]"), cm.json_get(doc, "$.nope")
            cm.url_host("http://u:p@h:1/x?y"), cm.url_uri("http://h?q"), cm.url_encode("a b")
            cm.http_var("a=1&b=2", "b"), cm.match("/a/b/c", "/a/*/#")
            cm.sha256(b"x" * 100), cm.hmac_sha256("k", "d"), cm.md5("m"), cm.crc32(b"c")
            cm.base64_decode(cm.base64_encode(b"abc" * 10)), cm.random_str(8)
            try:
                cm.base64_decode("!")
            except ValueError:
                pass
            json.loads(rpc.process('{"jsonrpc":"2.0","method":"ok","params":[%d],"id":1}' % i))
            rpc.process('[{"jsonrpc":"2.0","method":"boom","id":1},{"jsonrpc":"2.0","method":"x"}]')

    assert_flat("utilities and RPC", lambda: cycle(500), lambda: cycle(5000),
                rss_limit=4 * 1024 * 1024)


def test_five_thousand_websocket_messages_leave_memory_flat():
    """The binding's client and server in one manager exchange messages: each
    one makes a WsMessage on both sides and goes through ws_send twice. Sizes
    vary (all three frame length forms), text and binary, with a ping now and
    then (WS_CTL on the server)."""
    from cymongoose import (MG_EV_HTTP_MSG, MG_EV_WS_CTL, MG_EV_WS_MSG, MG_EV_WS_OPEN,
                            WEBSOCKET_OP_BINARY, WEBSOCKET_OP_PING, WEBSOCKET_OP_TEXT)

    ctl = [0]

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data, {"X-Test": "mem"})
        elif ev == MG_EV_WS_MSG:
            conn.ws_send(data.data, data.flags & 0x0F)
        elif ev == MG_EV_WS_CTL:
            ctl[0] += 1

    m = Manager(server)
    port = m.listen("ws://127.0.0.1:0").local_addr[1]
    sizes = (0, 10, 125, 126, 1000, 65536)

    def run(total, clients=5):
        state = {"n": 0, "closed": 0}
        per = total // clients

        def send_next(conn):
            i = conn.userdata
            if i % 50 == 0:
                conn.ws_send(b"p", WEBSOCKET_OP_PING)
            op = WEBSOCKET_OP_TEXT if i % 2 else WEBSOCKET_OP_BINARY
            conn.ws_send(b"x" * sizes[i % len(sizes)], op)

        def client(conn, ev, data):
            if ev == MG_EV_WS_OPEN:
                conn.userdata = 0
                send_next(conn)
            elif ev == MG_EV_WS_MSG:
                assert len(data.data) == sizes[conn.userdata % len(sizes)] and data.text is not None
                state["n"] += 1
                conn.userdata += 1
                if conn.userdata == per:
                    conn.close()
                else:
                    send_next(conn)
            elif ev == MG_EV_CLOSE:
                state["closed"] += 1

        for _ in range(clients):
            m.ws_connect("ws://127.0.0.1:%d/mem" % port, client)
        poll_until(m, lambda: state["closed"] == clients and len(m.connections) == 1,
                   timeout=60, step_ms=5)
        assert state["n"] == total

    try:
        assert_flat("5k WebSocket messages", lambda: run(1000), lambda: run(5000))
    finally:
        m.close()
    assert ctl[0] >= 5000 // 50
