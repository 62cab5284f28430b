"""The seed pages' HTTP examples, run as written (only the listen address is
changed to a free loopback port and sleeps are shortened), plus the threading
guide's worker pool under load."""

import hashlib
import http.client
import os
import queue
import signal
import socket
import threading
import time
import urllib.request

import pytest

from cymongoose import MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_HTTP_MSG, MG_EV_WAKEUP, Manager

from conftest import free_port, in_thread, poll_until


def fetch(port, path="/", data=None, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), data=data,
                                timeout=timeout) as r:
        return r.status, r.read()


def test_user_guide_basic_pattern():
    """User guide, "Basic Pattern": signal handlers, listen(http=True), poll(100)."""
    shutdown_requested = False
    answered = []

    def signal_handler(sig, frame):
        nonlocal shutdown_requested
        shutdown_requested = True

    def event_handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            answered.append(data.uri)
            conn.reply(200, b"pattern")

    port = free_port()
    old = signal.signal(signal.SIGTERM, signal_handler)
    try:
        manager = Manager(event_handler)
        manager.listen("http://127.0.0.1:%d" % port, http=True)

        def client():
            result = fetch(port, "/x")
            os.kill(os.getpid(), signal.SIGTERM)
            return result

        t = threading.Thread(target=lambda: results.append(client()))
        results = []
        t.start()
        started = time.monotonic()
        try:
            while not shutdown_requested:
                manager.poll(100)
                assert time.monotonic() - started < 10
        finally:
            manager.close()
        t.join(5)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert results == [(200, b"pattern")] and answered == ["/x"]


def test_user_guide_graceful_shutdown_with_drain():
    """reply() then drain(): the whole reply arrives, then the connection closes,
    even though the client asked for keep-alive."""

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"Goodbye!")
            conn.drain()  # Flushes send buffer before closing

    m = Manager(handler)
    port = m.listen("http://127.0.0.1:0").local_addr[1]

    def client():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got  # closed by the server
                got += chunk

    try:
        got = in_thread(m, client)
    finally:
        m.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nGoodbye!")


def test_user_guide_error_handling_pattern(capsys):
    def process_request(conn, data):
        if data.uri == "/bad":
            raise ValueError("cannot process")
        conn.reply(200, b"processed")

    def handler(conn, ev, data):
        if ev == MG_EV_ERROR:
            print(f"Error: {data}")
            conn.close()

        try:
            # Your event handling
            if ev == MG_EV_HTTP_MSG:
                process_request(conn, data)
        except Exception as e:
            print(f"Handler error: {e}")
            conn.reply(500, b"Internal Server Error")
            conn.drain()

    from cymongoose import MG_EV_ERROR

    m = Manager(handler)
    port = m.listen("http://127.0.0.1:0").local_addr[1]

    def client():
        ok = fetch(port, "/good")
        try:
            fetch(port, "/bad")
        except urllib.error.HTTPError as e:
            return ok, (e.code, e.read())

    import urllib.error

    try:
        ok, bad = in_thread(m, client)
    finally:
        m.close()
    assert ok == (200, b"processed") and bad == (500, b"Internal Server Error")
    assert "Handler error: cannot process" in capsys.readouterr().out


def test_manager_page_http_client():
    """Manager page, "HTTP/HTTPS Client": raw request at CONNECT, status() and
    body_text at MSG (our own server plays example.com)."""
    out = []

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"<html>example</html>", {"Content-Type": "text/html"})

    def client_handler(conn, ev, data):
        if ev == MG_EV_CONNECT:
            # Send HTTP request
            conn.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        elif ev == MG_EV_HTTP_MSG:
            out.append(f"Status: {data.status()}")
            out.append(f"Body: {data.body_text}")
            conn.close()

    manager = Manager(server)
    port = manager.listen("http://127.0.0.1:0").local_addr[1]
    try:
        conn = manager.connect("http://127.0.0.1:%d" % port, client_handler)
        poll_until(manager, lambda: len(out) == 2 and conn.is_closing)
    finally:
        manager.close()
    assert out == ["Status: 200", "Body: <html>example</html>"]


def test_threading_guide_basic_pattern():
    """Threading guide, "Basic Pattern": one worker, a work and a result queue,
    wakeup(conn_id, b"result_ready")."""

    def expensive_computation(data):
        return data.upper()

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            # Offload to worker
            work_queue.put({
                'conn_id': conn.id,  # Use ID, not Connection object
                'data': data.body_bytes,
            })

        elif ev == MG_EV_WAKEUP:
            # Result ready
            result = result_queue.get()
            conn.reply(200, result['result'])
            conn.drain()

    # Enable wakeup support
    manager = Manager(handler, enable_wakeup=True)

    # Work queues
    work_queue = queue.Queue()
    result_queue = queue.Queue()

    def worker():
        """Background worker thread."""
        while True:
            work = work_queue.get()
            if work is None:
                break

            # Process work
            result = expensive_computation(work['data'])

            # Store result
            result_queue.put({
                'conn_id': work['conn_id'],
                'result': result,
            })

            # Wake up event loop
            manager.wakeup(work['conn_id'], b"result_ready")

    # Start worker
    worker_thread = threading.Thread(target=worker, daemon=True)
    worker_thread.start()

    port = manager.listen("http://127.0.0.1:0", http=True).local_addr[1]
    try:
        got = in_thread(manager, lambda: [fetch(port, "/", b"hello %d" % i) for i in range(3)])
    finally:
        work_queue.put(None)
        worker_thread.join(5)
        manager.close()
    assert got == [(200, b"HELLO %d" % i) for i in range(3)]


def test_threading_guide_complete_example_and_fast_path():
    """Threading guide, "Complete Example" (4 workers, connections by id), with
    the "Fast Path vs Slow Path" /status route; several clients at once."""
    connections = {}  # {conn_id: conn}
    work_queue = queue.Queue()
    result_queue = queue.Queue()

    def process_image(image_data):
        """Simulate expensive image processing."""
        time.sleep(0.05)  # CPU-intensive work (shortened)
        if image_data == b"bad":
            raise ValueError("cannot decode image")
        return b"PROCESSED_" + image_data

    def worker():
        """Background image processor."""
        while True:
            work = work_queue.get()
            if work is None:
                break

            try:
                result = process_image(work['data'])
                result_queue.put({
                    'conn_id': work['conn_id'],
                    'result': result,
                    'error': None,
                })
            except Exception as e:
                result_queue.put({
                    'conn_id': work['conn_id'],
                    'result': None,
                    'error': str(e),
                })

            # Wake up event loop
            manager.wakeup(work['conn_id'], b"processed")

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            # Fast path: simple request
            if data.uri == "/status":
                conn.reply(200, b'{"status": "ok"}')
                conn.drain()
                return

            # Track connection
            connections[conn.id] = conn

            # Offload to worker
            work_queue.put({
                'conn_id': conn.id,
                'data': data.body_bytes,
            })

        elif ev == MG_EV_WAKEUP:
            # Result ready
            result = result_queue.get()

            # Look up connection
            conn = connections.get(result['conn_id'])
            if conn:
                if result['error']:
                    conn.reply(500, result['error'].encode())
                else:
                    conn.reply(200, result['result'])
                conn.drain()

                # Clean up
                del connections[conn.id]

    # Create manager with wakeup support
    manager = Manager(handler, enable_wakeup=True)

    # Start worker threads
    num_workers = 4
    threads = []
    for _ in range(num_workers):
        t = threading.Thread(target=worker, daemon=True)
        t.start()
        threads.append(t)

    port = manager.listen("http://127.0.0.1:0", http=True).local_addr[1]

    def clients():
        results = {}

        def one(i):
            try:
                results[i] = fetch(port, "/upload", b"img%d" % i)
            except urllib.error.HTTPError as e:
                results[i] = (e.code, e.read())

        import urllib.error

        ts = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in ts:
            t.start()
        status = fetch(port, "/status")
        bad = None
        try:
            fetch(port, "/upload", b"bad")
        except urllib.error.HTTPError as e:
            bad = (e.code, e.read())
        for t in ts:
            t.join(20)
        return results, status, bad

    started = time.monotonic()
    try:
        results, status, bad = in_thread(manager, clients)
    finally:
        for _ in range(num_workers):
            work_queue.put(None)  # Poison pill
        for t in threads:
            t.join(timeout=5.0)
        manager.close()
    assert results == {i: (200, b"PROCESSED_img%d" % i) for i in range(12)}
    assert status == (200, b'{"status": "ok"}')
    assert bad == (500, b"cannot decode image")
    assert connections == {}
    assert time.monotonic() - started < 10  # the 4 workers ran in parallel


def test_worker_pool_under_load_loses_nothing():
    """8 worker threads answer 8 x 1,000 keep-alive requests through wakeup
    (the result travels in the payload, as in "Wakeup Payload Size Limit");
    every client gets exactly its own answers, in order."""
    num_workers, num_clients, per_client = 8, 8, 1000
    work_queue = queue.Queue()
    counts = {"msg": 0, "wakeup": 0, "accept": 0}

    def worker():
        while True:
            work = work_queue.get()
            if work is None:
                break
            digest = hashlib.sha256(work["data"]).hexdigest().encode()
            while not manager.wakeup(work["conn_id"], digest):
                time.sleep(0.001)  # queue limit: retry (never hit in practice)

    def handler(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            counts["accept"] += 1
        elif ev == MG_EV_HTTP_MSG:
            counts["msg"] += 1
            work_queue.put({"conn_id": conn.id, "data": data.body_bytes})
        elif ev == MG_EV_WAKEUP:
            counts["wakeup"] += 1
            conn.reply(200, data)

    manager = Manager(handler, enable_wakeup=True)
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(num_workers)]
    for t in workers:
        t.start()
    port = manager.listen("http://127.0.0.1:0").local_addr[1]

    def clients():
        failures = []

        def one(cid):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for i in range(per_client):
                    body = b"client %d request %d" % (cid, i)
                    c.request("POST", "/work", body=body)
                    r = c.getresponse()
                    got = r.read()
                    if r.status != 200 or got != hashlib.sha256(body).hexdigest().encode():
                        failures.append((cid, i, r.status, got))
                        return
            except Exception as e:  # reported below
                failures.append((cid, repr(e)))
            finally:
                c.close()

        ts = [threading.Thread(target=one, args=(cid,)) for cid in range(num_clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        return failures

    try:
        failures = in_thread(manager, clients, timeout=180, step_ms=50)
        poll_until(manager, lambda: len(manager.connections) == 1)  # clients gone
    finally:
        for _ in workers:
            work_queue.put(None)
        for t in workers:
            t.join(5)
        manager.close()
    assert failures == []
    total = num_clients * per_client
    assert counts == {"msg": total, "wakeup": total, "accept": num_clients}
