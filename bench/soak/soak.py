#!/usr/bin/env python3
"""Soak load for libcymg servers (run by bench/soak/soak.sh; see bench/README.md).

Drives `cymg serve` (HTTP, static files) and a WebSocket echo server on
127.0.0.1 for a set time with a bounded, mixed load, samples each server's
memory (VmRSS), open descriptors and TCP connections every few seconds into a
CSV, and decides at the end whether any of them grows without bound.

Load, each a thread looping until the end, every one rate-limited:
  keepalive      GET of static files of three sizes, the listing and a 404 on
                 one persistent connection, every answer read and checked
  per_request    the same, one connection per request (Connection: close)
  ws_echo        WebSocket messages of 1 B .. 32 KiB echoed and compared;
                 the connection is closed (close handshake) and remade every
                 200 messages
  nonreader_http pipelines requests (mostly 404s and the listing, answered from
                 memory) for a while and never reads, then leaves with RST
  nonreader_ws   sends pings for a while and never reads, then leaves with RST
  vanishing      connects and: leaves at once / sends half a request and
                 leaves / leaves with RST in the middle of a download / sends
                 half a WebSocket frame and leaves with RST

Verdict (exit status 1 on failure), for each server and each of rss_kb, fds and
conns: with Q2 the samples of the second quarter of the run and Q4 those of the
last quarter, the metric grows without bound when
    max(Q4) > max(Q2) * (1 + GROWTH_PCT/100) + SLACK[metric]
and the least-squares slope over the second half is positive. Either a leak or
connections that never end satisfy both; a single burst (a non-reader that
happens to be connected at the last sample) does not move the slope of the
whole half. A server that dies, or normal clients that got wrong answers or
more than ERROR_PCT of failed exchanges, fail the run too.
"""
import argparse
import base64
import csv
import os
import random
import socket
import struct
import sys
import threading
import time

FILES = {"/small.txt": 1024, "/medium.bin": 64 * 1024, "/large.bin": 1024 * 1024}
SLACK = {"rss_kb": 4096, "fds": 8, "conns": 8}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.err = {}
        self.wrong = {}
        self.last_err = {}

    def add(self, kind, ok=0, err=0, wrong=0, why=None):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + ok
            self.err[kind] = self.err.get(kind, 0) + err
            self.wrong[kind] = self.wrong.get(kind, 0) + wrong
            if why:
                self.last_err[kind] = why


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        b = s.recv(min(65536, n - len(out)))
        if not b:
            raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
        out += b
    return bytes(out)


class Reader:
    """Buffered reads of HTTP responses off one socket."""

    def __init__(self, s):
        self.s = s
        self.buf = b""

    def fill(self):
        b = self.s.recv(65536)
        if not b:
            raise ConnectionError("closed")
        self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n")
        line, self.buf = self.buf[:i], self.buf[i + 2:]
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_only=False):
        status = int(self.line().split()[1])
        headers = {}
        while True:
            ln = self.line()
            if not ln:
                break
            k, _, v = ln.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if head_only or status in (204, 304):
            return status, headers, b""
        if b"content-length" in headers:
            return status, headers, self.take(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
            body = b""
            while True:
                n = int(self.line().split(b";")[0], 16)
                if n == 0:
                    while self.line():
                        pass
                    return status, headers, body
                body += self.take(n)
                self.take(2)
        body = self.buf
        self.buf = b""
        while True:
            b = self.s.recv(65536)
            if not b:
                return status, headers, body
            body += b


def connect(port, timeout=10, rcvbuf=0):
    """rcvbuf: a small receive buffer, set before the handshake so that the
    window stays small: a non-reader's kernel then absorbs little of what the
    server sends, and the rest piles up (or not) in the server."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def pick_path(rng):
    r = rng.random()
    if r < 0.8:
        return rng.choice(list(FILES))
    return "/" if r < 0.9 else "/missing-%d" % rng.randrange(1000)


def check(path, status, body):
    if path in FILES:
        return status == 200 and len(body) == FILES[path]
    if path == "/":
        return status == 200 and b"small.txt" in body
    return status == 404


def keepalive(a, st, stop, rng):
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = connect(a.http_port)
                r = Reader(s)
            path = pick_path(rng)
            s.sendall(("GET %s HTTP/1.1\r\nHost: soak\r\n\r\n" % path).encode())
            status, _, body = r.response()
            st.add("keepalive", ok=1, wrong=0 if check(path, status, body) else 1)
        except (OSError, ValueError, IndexError) as e:
            st.add("keepalive", err=1, why=repr(e))
            if s:
                s.close()
            s = None
        time.sleep(a.pace)
    if s:
        s.close()


def per_request(a, st, stop, rng):
    while not stop.is_set():
        try:
            with connect(a.http_port) as s:
                path = pick_path(rng)
                s.sendall(("GET %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n" % path).encode())
                status, _, body = Reader(s).response()
                st.add("per_request", ok=1, wrong=0 if check(path, status, body) else 1)
        except (OSError, ValueError, IndexError) as e:
            st.add("per_request", err=1, why=repr(e))
        time.sleep(a.pace * 2)


def ws_handshake(port, timeout=10, rcvbuf=0):
    s = connect(port, timeout, rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    r = Reader(s)
    status, _, _ = r.response(head_only=True)
    if status != 101:
        raise ConnectionError("upgrade answered %d" % status)
    return s, r


def ws_frame(op, payload, mask=True):
    b0 = 0x80 | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    data = bytes(c ^ key[i % 4] for i, c in enumerate(payload)) if n < 4096 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + data


def ws_read(r):
    h = r.take(2)
    op, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", r.take(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", r.take(8))[0]
    return op, r.take(n)


def ws_echo(a, st, stop, rng):
    s = None
    sent = 0
    while not stop.is_set():
        try:
            if s is None:
                s, r = ws_handshake(a.ws_port)
                sent = 0
            size = rng.choice([1, 10, 100, 1000, 8000, 32768])
            msg = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
            msg = msg[:size]
            s.sendall(ws_frame(2, msg))
            op, data = ws_read(r)
            st.add("ws_echo", ok=1, wrong=0 if (op == 2 and data == msg) else 1)
            sent += 1
            if sent >= 200:
                s.sendall(ws_frame(8, struct.pack(">H", 1000)))
                op, _ = ws_read(r)
                st.add("ws_echo", wrong=0 if op == 8 else 1)
                s.close()
                s = None
        except (OSError, ValueError, IndexError) as e:
            st.add("ws_echo", err=1, why=repr(e))
            if s:
                s.close()
            s = None
        time.sleep(a.pace)
    if s:
        s.close()


def send_some(s, data):
    """Sends what a non-blocking socket takes; returns the rest, to go first
    next time (so that requests and frames are never cut)."""
    if not data:
        return data
    try:
        return data[s.send(data):]
    except BlockingIOError:
        return data  # the server stopped reading: that is the point


def nonreader_http(a, st, stop, rng):
    """Pipelines requests whose answers are made in memory (404s, the listing;
    a file now and then) in batches, and never reads."""
    while not stop.is_set():
        try:
            s = connect(a.http_port, rcvbuf=4096)
            s.setblocking(False)
            end = time.time() + a.hold
            reqs, pending = 0, b""
            # Sends its bounded share, then stays connected (not reading) until
            # the end of its visit, so that samples see what it made pile up.
            while time.time() < end and not stop.is_set():
                if not pending and reqs < a.nonreader_requests:
                    pending = b"".join(("GET %s HTTP/1.1\r\nHost: soak\r\n\r\n" % rng.choice(
                        ["/missing"] * 6 + ["/"] * 3 + ["/small.txt"])).encode() for _ in range(100))
                    reqs += 100
                pending = send_some(s, pending)
                time.sleep(0.005)
            st.add("nonreader_http", ok=1)
            rst_close(s)
        except OSError as e:
            st.add("nonreader_http", err=1, why=repr(e))
        stop.wait(1)


def nonreader_ws(a, st, stop, rng):
    """Floods pings (each answered by a pong nobody reads), never reads."""
    while not stop.is_set():
        try:
            s, _ = ws_handshake(a.ws_port, rcvbuf=4096)
            s.setblocking(False)
            end = time.time() + a.hold
            ping = ws_frame(9, b"p" * 125)
            pings = 0
            pending = b""
            while time.time() < end and not stop.is_set():
                if not pending and pings < a.nonreader_requests:
                    pending = ping * 50
                    pings += 50
                pending = send_some(s, pending)
                time.sleep(0.002)
            st.add("nonreader_ws", ok=1)
            rst_close(s)
        except (OSError, ValueError, IndexError) as e:
            st.add("nonreader_ws", err=1, why=repr(e))
        stop.wait(1)


def vanishing(a, st, stop, rng):
    while not stop.is_set():
        how = rng.randrange(4)
        try:
            if how == 0:
                connect(a.http_port).close()
            elif how == 1:
                s = connect(a.http_port)
                s.sendall(b"GET /small.txt HTTP/1.1\r\nHo")
                s.close()
            elif how == 2:
                s = connect(a.http_port)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET /large.bin HTTP/1.1\r\nHost: soak\r\n\r\n")
                s.recv(100)
                rst_close(s)
            else:
                s, _ = ws_handshake(a.ws_port)
                s.sendall(ws_frame(2, b"x" * 1000)[:500])
                rst_close(s)
            st.add("vanishing", ok=1)
        except (OSError, ValueError, IndexError) as e:
            st.add("vanishing", err=1, why=repr(e))
        time.sleep(a.pace * 4)


def tcp_conns(port):
    """Server-side TCP sockets on port: (held, established, time_wait). held counts
    every state but LISTEN and TIME_WAIT: TIME_WAIT sockets belong to the
    kernel alone (a server that closes first leaves one per connection for 60 s),
    so they say nothing about the server; they are recorded, not judged."""
    held = est = tw = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    lport = int(parts[1].rsplit(":", 1)[1], 16)
                    state = parts[3]
                    if lport != port or state == "0A":
                        continue
                    if state == "06":
                        tw += 1
                    else:
                        held += 1
                        est += state == "01"
        except OSError:
            pass
    return held, est, tw


def sample(pid):
    rss = None
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


def verdict(rows, seconds, growth_pct):
    """Returns (lines of the report, something grows, too few samples)."""
    out, failed, short = [], False, False
    for server in sorted({r["server"] for r in rows}):
        rs = [r for r in rows if r["server"] == server]
        for m in ("rss_kb", "fds", "conns"):
            q2 = [r[m] for r in rs if seconds / 4 <= r["t"] < seconds / 2]
            q4 = [r[m] for r in rs if r["t"] >= 3 * seconds / 4]
            half = [(r["t"], r[m]) for r in rs if r["t"] >= seconds / 2]
            if not q2 or not q4:
                out.append("%s %s: too few samples for a verdict" % (server, m))
                short = True
                continue
            limit = max(q2) * (1 + growth_pct / 100.0) + SLACK[m]
            sl = slope(half) * 60
            grows = max(q4) > limit and sl > 0
            failed |= grows
            out.append("%-6s %-6s start %8d  max Q2 %8d  max Q4 %8d  limit %8d  slope %+10.1f/min  %s" % (
                server, m, rs[0][m], max(q2), max(q4), limit, sl, "GROWS" if grows else "ok"))
    return out, failed, short


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--ws-port", type=int, required=True)
    p.add_argument("--http-pid", type=int, required=True)
    p.add_argument("--ws-pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=3600)
    p.add_argument("--interval", type=float, default=5)
    p.add_argument("--csv", required=True)
    p.add_argument("--pace", type=float, default=0.005, help="pause between a worker's exchanges, s")
    p.add_argument("--hold", type=float, default=20, help="how long a non-reader stays, s")
    p.add_argument("--nonreader-requests", type=int, default=100000,
                   help="requests (pings) a non-reader sends per visit")
    p.add_argument("--workers", type=int, default=2, help="keepalive, per_request and ws_echo threads each")
    p.add_argument("--growth-pct", type=float, default=10)
    p.add_argument("--error-pct", type=float, default=0.5)
    a = p.parse_args()

    st, stop = Stats(), threading.Event()
    kinds = [keepalive, per_request, ws_echo] * a.workers + [nonreader_http, nonreader_ws, vanishing]
    threads = [threading.Thread(target=k, args=(a, st, stop, random.Random(i)), daemon=True)
               for i, k in enumerate(kinds)]
    for t in threads:
        t.start()
    rows, dead = [], []
    start = time.time()
    servers = {"http": (a.http_pid, a.http_port), "ws": (a.ws_pid, a.ws_port)}
    with open(a.csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t", "server", "rss_kb", "fds", "conns", "established", "time_wait", "ok", "errors"])
        while True:
            t = time.time() - start
            for name, (pid, port) in servers.items():
                try:
                    rss, fds = sample(pid)
                except OSError:
                    dead.append(name)
                    continue
                conns, est, tw = tcp_conns(port)
                with st.lock:
                    ok, err = sum(st.ok.values()), sum(st.err.values())
                rows.append({"t": t, "server": name, "rss_kb": rss, "fds": fds, "conns": conns})
                w.writerow(["%.1f" % t, name, rss, fds, conns, est, tw, ok, err])
            fh.flush()
            if dead or t >= a.seconds:
                break
            time.sleep(min(a.interval, max(0.0, a.seconds - t)))
    stop.set()
    for t in threads:
        t.join(timeout=15)

    print("soak: %.0f s, %d samples per server, CSV in %s" % (time.time() - start, len(rows) // 2, a.csv))
    failed = False
    for k in sorted(st.ok):
        print("  %-15s ok %8d  errors %6d  wrong %4d%s" % (k, st.ok[k], st.err[k], st.wrong[k],
                                                          ("  last error: " + st.last_err[k]) if k in st.last_err else ""))
        normal = k in ("keepalive", "per_request", "ws_echo")
        if st.wrong[k] or (normal and st.err[k] > (st.ok[k] + st.err[k]) * a.error_pct / 100.0):
            failed = True
            print("  %s: FAILED (wrong answers or too many errors)" % k)
    if dead:
        print("soak: FAILED: server(s) died: %s" % ", ".join(sorted(set(dead))))
        failed = True
    lines, grew, short = verdict(rows, min(a.seconds, time.time() - start), a.growth_pct)
    for ln in lines:
        print("  " + ln)
    if grew:
        print("soak: FAILED: a metric grows without bound (max Q4 above the limit and a positive slope)")
    if short and not dead:
        print("soak: FAILED: too few samples (run longer than 4 intervals)")
    failed |= grew or short
    print("soak: %s" % ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
