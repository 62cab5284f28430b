"""`cymg serve --workers N`: N threads, one loop and SO_REUSEPORT listener each,
over real sockets with curl and http.client: every worker answers, the access
log is whole lines in common log format, SIGTERM lets a slow download finish
byte-identical and exits 0, a taken port is a clear error."""

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import cymg_tool, free_port, recv_to_eof, wait_refused

CLF = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                 r'"GET /(a\.txt|big\.bin)\?n=\d+ HTTP/1\.[01]" 200 - (\d+)$')


@pytest.fixture
def www(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    return tmp_path


def start(www, *extra):
    proc = subprocess.Popen([cymg_tool(), "serve", str(www), "--listen", "http://127.0.0.1:0"]
                            + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()  # printed once every worker listens
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert m, (line, proc.stderr.read())
    return proc, int(m.group(1))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def test_every_worker_answers_and_log_lines_are_whole(www):
    proc, port = start(www, "--workers", "2", "--log-worker")
    try:
        n = 200
        for i in range(n):  # a new connection each time: the kernel spreads them
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/a.txt?n=%d" % i)
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"hello\n"
            c.close()
        if shutil.which("curl"):
            urls = ["http://127.0.0.1:%d/a.txt?n=%d" % (port, n + i) for i in range(50)]
            out = subprocess.run(["curl", "-sS", "--parallel", "--parallel-max", "20"] + urls,
                                 capture_output=True, timeout=60)
            assert out.returncode == 0 and out.stdout == b"hello\n" * 50, out.stderr
            n += 50
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    lines = out.splitlines()  # the banner was read by start()
    assert len(lines) == n, out[-2000:]
    workers = {}
    for line in lines:
        m = CLF.match(line)
        assert m, repr(line)  # interleaved or torn lines would not match
        workers[m.group(2)] = workers.get(m.group(2), 0) + 1
    assert set(workers) == {"0", "1"}, workers


def test_sigterm_lets_a_slow_download_finish(www):
    proc, port = start(www, "--workers", "2", "--grace", "300")
    want = hashlib.sha256((www / "big.bin").read_bytes()).hexdigest()
    s = socket.create_connection(("127.0.0.1", port), 30)
    s.sendall(b"GET /big.bin?n=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = bytearray(s.recv(4096))  # the answer is under way...
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    proc.send_signal(signal.SIGTERM)  # ...when the stop comes
    # New connections are refused once every listener closed.
    wait_refused(port)
    assert proc.poll() is None  # still sending the file
    got = recv_to_eof(s, got)
    s.close()
    head, body = bytes(got).split(b"\r\n\r\n", 1)
    assert hashlib.sha256(body).hexdigest() == want, (head, len(body))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "big.bin" in out.decode()  # the log was flushed on exit


def test_port_taken_is_a_clear_error(www):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        for n in ("1", "2"):
            out = subprocess.run([cymg_tool(), "serve", str(www), "--workers", n, "--listen",
                                  "http://127.0.0.1:%d" % port], capture_output=True, timeout=30)
            assert out.returncode != 0
            assert b"in use" in out.stderr.lower(), out.stderr
    finally:
        taken.close()


def test_bad_worker_count(www):
    out = subprocess.run([cymg_tool(), "serve", str(www), "--workers", "0"],
                         capture_output=True, timeout=30)
    assert out.returncode == 2 and b"--workers" in out.stderr
