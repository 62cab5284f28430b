"""The Python examples run and do what they say."""

import pathlib
import re
import signal
import socket
import subprocess
import sys

from conftest import recv_to_eof, wait_refused

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def test_tcp_echo_example():
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "tcp_echo.py"), "tcp://127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+);", line).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"echo me")
            assert s.recv(100) == b"echo me"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "bye" in out


def test_tcp_echo_example_help():
    out = subprocess.run([sys.executable, str(EXAMPLES / "tcp_echo.py"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "tcp://127.0.0.1:8000" in out.stdout


def start_server(script, *args):
    """Starts an example server on a free port; returns (proc, port)."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / script), "http://127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if m is None:
        proc.kill()
        raise AssertionError("no address in %r; stderr: %s" % (line, proc.stderr.read()))
    return proc, int(m.group(1))


def stop_server(proc):
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "bye" in out
    assert "Traceback" not in err, err


def fetch(port, path, data=None):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), data=data,
                                    timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_http_server_example():
    import json

    proc, port = start_server("http_server.py")
    try:
        st, _, body = fetch(port, "/")
        assert st == 200 and body.startswith(b"Hello from cymongoose")
        st, h, body = fetch(port, "/api/status")
        assert st == 200 and h["Content-Type"] == "application/json"
        assert json.loads(body)["status"] == "ok"
        assert json.loads(fetch(port, "/api/sum?a=2&b=40")[2]) == {"sum": 42.0}
        assert fetch(port, "/api/sum?a=x")[0] == 400
        st, _, body = fetch(port, "/api/echo", b'{"name": "x"}')
        assert st == 200 and json.loads(body)["name"] == "x" and json.loads(body)["length"] == 13
        assert fetch(port, "/api/echo")[0] == 405
        st, h, body = fetch(port, "/stream")
        assert body == b"chunk 0\nchunk 1\nchunk 2\n"
        st, h, body = fetch(port, "/events")
        assert h["Content-Type"] == "text/event-stream"
        assert body == b"".join(b"event: tick\ndata: %d\n\n" % i for i in range(3))
        assert fetch(port, "/nope")[0] == 404

        client = subprocess.run([sys.executable, str(EXAMPLES / "http_client.py"),
                                 "http://127.0.0.1:%d/api/sum?a=1&b=2" % port],
                                capture_output=True, text=True, timeout=30)
        assert client.returncode == 0, client.stderr
        status, body = client.stdout.split("\n", 1)
        assert status == "200" and json.loads(body) == {"sum": 3.0}
    finally:
        stop_server(proc)


def test_http_server_example_serves_files(tmp_path):
    (tmp_path / "index.html").write_text("<p>static home</p>")
    (tmp_path / "notes.txt").write_text("some notes")
    proc, port = start_server("http_server.py", "--root", str(tmp_path))
    try:
        st, h, body = fetch(port, "/")
        assert st == 200 and body.startswith(b"Hello")  # routes come first
        st, h, body = fetch(port, "/notes.txt")
        assert st == 200 and body == b"some notes" and h["Content-Type"].startswith("text/plain")
        assert fetch(port, "/index.html")[2] == b"<p>static home</p>"
        assert fetch(port, "/missing.txt")[0] == 404
    finally:
        stop_server(proc)


def test_http_client_example_reports_failures():
    from conftest import free_port

    out = subprocess.run([sys.executable, str(EXAMPLES / "http_client.py"),
                          "http://127.0.0.1:%d/" % free_port(), "--timeout", "5"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "error" in out.stderr


def test_threaded_server_example():
    import concurrent.futures
    import hashlib
    import json

    proc, port = start_server("threaded_server.py", "--workers", "3")
    try:
        st, _, body = fetch(port, "/status")
        assert st == 200 and json.loads(body)["status"] == "ok"
        payloads = [b"job %d" % i for i in range(20)] + [b"x" * 20000]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda d: fetch(port, "/process", d), payloads))
        for data, (st, _, body) in zip(payloads, results):
            assert st == 200
            assert body == b"sha256=" + hashlib.sha256(data).hexdigest().encode() + b"\n"
        assert fetch(port, "/other")[0] == 404
    finally:
        stop_server(proc)


def test_http_examples_help():
    for script, default in (("http_server.py", "http://127.0.0.1:8000"),
                            ("threaded_server.py", "http://127.0.0.1:8000"),
                            ("http_client.py", "url")):
        out = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and default in out.stdout, out.stderr



def recv_until(ws, pred):
    """Reads text messages until one satisfies pred; returns that one."""
    while True:
        msg = ws.recv()
        if pred(msg):
            return msg


def test_websocket_server_example():
    import pytest

    websocket = pytest.importorskip("websocket")  # Debian: python3-websocket
    for url in ("ws://127.0.0.1:0", "http://127.0.0.1:0"):
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "websocket_server.py"), url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            m = re.search(r"http://127\.0\.0\.1:(\d+)/ \(WebSocket at ws://127\.0\.0\.1:\1/ws\)",
                          line)
            assert m, line
            port = int(m.group(1))
            st, h, page = fetch(port, "/")
            assert st == 200 and h["Content-Type"].startswith("text/html")
            assert b"new WebSocket(" in page and b"<script src" not in page  # no CDN
            assert fetch(port, "/nope")[0] == 404
            assert fetch(port, "/ws")[0] == 400  # a plain GET is not an upgrade

            wsurl = "ws://127.0.0.1:%d/ws" % port
            a, b, c = (websocket.create_connection(wsurl, timeout=10) for _ in range(3))
            recv_until(a, lambda s: s.endswith(" joined (3 online)"))
            # Everyone, the sender included (that is the echo), gets each text message.
            b.send("hello, all")
            msgs = [recv_until(ws, lambda s: s.endswith("] hello, all")) for ws in (a, b, c)]
            assert len(set(msgs)) == 1 and msgs[0].startswith("[client ")
            # Binary is echoed to its sender only.
            c.send_binary(b"\x00\x01\xfe\xff")
            while True:
                opcode, data = c.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    break
            assert data == b"\x00\x01\xfe\xff"
            # A departure is announced to the others.
            c.close()
            recv_until(a, lambda s: s.endswith(" left (2 online)"))
            a.close()
            b.close()
        finally:
            stop_server(proc)


def test_websocket_server_example_help():
    out = subprocess.run([sys.executable, str(EXAMPLES / "websocket_server.py"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "ws://127.0.0.1:8000" in out.stdout, out.stderr


def test_wsgi_server_example():
    proc, port = start_server("wsgi_server.py")
    try:
        assert fetch(port, "/")[2] == b"Hello from a WSGI app on cymongoose\n"
        assert fetch(port, "/echo", b"round trip")[2] == b"round trip"
        assert fetch(port, "/count/3")[2] == b"0\n1\n2\n"
        assert fetch(port, "/nope")[0] == 404
    finally:
        stop_server(proc)


def test_multiprocess_server_example():
    """Worker processes share one port (reuse_port=True): many new connections
    reach every worker; SIGTERM to the parent reaches them all, a request half
    read when it comes is still answered, and no worker is left behind."""
    import concurrent.futures
    import json
    import os

    proc, port = start_server("multiprocess_server.py", "--workers", "2")
    seen = {}
    try:
        st, _, body = fetch(port, "/")
        assert st == 200 and body.startswith(b"hello from worker ")
        assert fetch(port, "/nope")[0] == 404
        # urllib opens a new connection (a new source port) per request, and
        # the kernel picks the worker by its hash: 200 leave none out by chance.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: fetch(port, "/pid"), range(200)))
        for st, _, body in answers:
            assert st == 200
            j = json.loads(body)
            seen[j["worker"]] = j["pid"]
        assert sorted(seen) == [0, 1], seen
        assert proc.pid not in seen.values()  # the parent serves nothing itself

        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\n")
        got = b""
        while b"hello from worker" not in got:  # then the half is read too
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        proc.send_signal(signal.SIGTERM)
        # Every worker has begun its stop once the port refuses connections.
        wait_refused(port, timeout=20)
        s.sendall(b"Host: x\r\n\r\n")
        got = recv_to_eof(s, got)
        s.close()
        assert b'"worker": ' in got, got  # the second answer, then the end
    finally:
        stop_server(proc)
    for pid in seen.values():  # reaped by the parent before it said bye
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError("worker pid %d still exists" % pid)


def test_multiprocess_server_example_ctrl_c():
    """Ctrl+C signals the whole process group: parent and workers at once."""
    import os

    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "multiprocess_server.py"),
                             "http://127.0.0.1:0", "--workers", "2"], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert fetch(port, "/")[0] == 200
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "bye" in out and "Traceback" not in err, err


def test_multiprocess_server_example_port_taken():
    """A port held without SO_REUSEPORT: the worker cannot listen, the parent
    says why and exits 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, str(EXAMPLES / "multiprocess_server.py"),
                              "http://127.0.0.1:%d" % port, "--workers", "2"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    assert "Address already in use" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_multiprocess_server_example_worker_dies():
    """A worker that dies on its own: the parent stops the others and exits 1."""
    import os

    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "multiprocess_server.py"),
                             "http://127.0.0.1:0", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        pids = [int(p) for p in re.search(r"\(pids ([\d ]+)\)", line).group(1).split()]
        assert len(pids) == 2, line
        os.kill(pids[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "worker-0 exited (code -9): stopping" in err, err
    assert "worker-1 ended" not in err, err  # the other one stopped cleanly
