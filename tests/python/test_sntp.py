"""SNTP client: against a chronyd started here on a free loopback port, and
against a Python responder for the replies no real server sends on demand."""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from cymongoose import MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_ERROR, MG_EV_READ, MG_EV_SNTP_TIME

from conftest import cymg_tool, free_port, poll_until

NTP_UNIX = 2208988800


def find_chronyd():
    for p in ("/usr/sbin/chronyd", "/usr/bin/chronyd", "/sbin/chronyd"):
        if os.access(p, os.X_OK):
            return p
    return shutil.which("chronyd")


def ntp_ts(unix_s):
    sec = int(unix_s) + NTP_UNIX
    frac = int((unix_s - int(unix_s)) * 2**32)
    return ((sec % 2**32) << 32) | frac


def request(port, timeout=0.2):
    """One raw SNTP exchange: the reply bytes or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        pkt = bytearray(48)
        pkt[0] = 0x23
        pkt[40:48] = struct.pack(">Q", ntp_ts(time.time()))
        s.sendto(bytes(pkt), ("127.0.0.1", port))
        try:
            return s.recv(128)
        except socket.timeout:
            return None


@pytest.fixture(scope="module")
def chrony():
    """chronyd serving this machine's clock on 127.0.0.1:<port>, not steering it."""
    binary = find_chronyd()
    if binary is None:
        pytest.skip("chronyd not installed (make test installs chrony)")
    d = tempfile.mkdtemp(prefix="cymg-chrony-")
    os.chmod(d, 0o755)  # chronyd drops root for _chrony once started
    port = free_port(socket.SOCK_DGRAM)
    conf = os.path.join(d, "chrony.conf")
    with open(conf, "w") as f:
        f.write(
            f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n"
            f"cmdport 0\nbindcmdaddress /\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n"
        )
    args = [binary, "-x", "-d", "-f", conf]
    if os.getuid() != 0:
        args.insert(1, "-U")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if proc.poll() is not None:
                pytest.fail("chronyd exited: %s" % proc.stderr.read().decode(errors="replace"))
            if request(port) is not None:
                break
        else:
            pytest.fail("chronyd did not answer")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
        shutil.rmtree(d, ignore_errors=True)


class Rec:
    def __init__(self):
        self.events = []

    def __call__(self, conn, ev, data):
        assert ev != MG_EV_READ  # raw datagrams stay in the SNTP layer
        self.events.append((ev, data))

    def of(self, ev):
        return [d for e, d in self.events if e == ev]

    def ended(self):
        return bool(self.of(MG_EV_CLOSE))


def test_chrony_time(mgr, chrony):
    r = Rec()
    conn = mgr.sntp_connect(f"udp://127.0.0.1:{chrony}", r)
    assert conn.is_udp  # at once, before any poll
    poll_until(mgr, lambda: r.of(MG_EV_SNTP_TIME) or r.ended())
    assert r.of(MG_EV_ERROR) == []
    (ms,) = r.of(MG_EV_SNTP_TIME)
    assert isinstance(ms, int)
    assert abs(ms - time.time() * 1000) < 5000  # chronyd serves our own clock
    conn.sntp_request()  # periodic requests on the same connection
    poll_until(mgr, lambda: len(r.of(MG_EV_SNTP_TIME)) == 2 or r.ended())
    assert r.of(MG_EV_ERROR) == []
    conn.close()
    mgr.poll(0)
    with pytest.raises(RuntimeError):
        conn.sntp_request()


def test_seed_example(mgr, chrony, capsys):
    # The seed page's example, with the local chronyd for time.google.com.
    manager = mgr
    from cymongoose import MG_EV_SNTP_TIME

    def time_handler(conn, ev, data):
        if ev == MG_EV_SNTP_TIME:
            # data is uint64_t epoch milliseconds
            print(f"Time: {data} ms since epoch")

    conn = manager.sntp_connect(f"udp://127.0.0.1:{chrony}", time_handler)
    conn.sntp_request()  # Request time

    out = []
    poll_until(mgr, lambda: out.append(capsys.readouterr().out) or "Time: " in "".join(out))
    line = "".join(out).splitlines()[0]
    ms = int(line.split()[1])
    assert abs(ms - time.time() * 1000) < 5000
    conn.close()
    mgr.poll(0)


def test_sntp_scheme_is_udp_123(mgr):
    conn = mgr.sntp_connect("sntp://127.0.0.1")
    assert conn.is_udp and conn.remote_addr[1] == 123
    conn.close()
    mgr.poll(0)


def test_bad_urls(mgr):
    with pytest.raises(RuntimeError, match="sntp://"):
        mgr.sntp_connect("http://127.0.0.1:123")
    with pytest.raises(RuntimeError, match="port"):
        mgr.sntp_connect("udp://127.0.0.1")


def test_sntp_request_on_other_connection(mgr):
    conn = mgr.connect("udp://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="SNTP"):
        conn.sntp_request()
    conn.close()
    mgr.poll(0)


class Responder:
    """A UDP SNTP server in a thread: answers each request as `mode` says."""

    SERVER_MS = 2_200_000_000_000 + 123  # 2039: past the era rollover, far from now

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def reply(self, req):
        p = bytearray(48)
        p[0] = (4 << 3) | 4
        p[1] = 3
        p[24:32] = req[40:48]
        ms = self.SERVER_MS  # in integers, the fraction rounded up: no float loss
        ts = (((ms // 1000 + NTP_UNIX) % 2**32) << 32) | -(-(ms % 1000) * 2**32 // 1000)
        p[32:40] = struct.pack(">Q", ts)
        p[40:48] = struct.pack(">Q", ts)
        return p

    def run(self):
        while not self.stop:
            try:
                req, peer = self.sock.recvfrom(128)
            except socket.timeout:
                continue
            self.requests += 1
            p = self.reply(req)
            m = self.mode
            if m == "silent":
                continue
            if m == "mode3":
                p[0] = (4 << 3) | 3
            elif m == "origin":
                p[31] ^= 0x55
            elif m == "kiss":
                p[0] = (3 << 6) | (4 << 3) | 4
                p[1] = 0
                p[12:16] = b"DENY"
            elif m == "short":
                p = p[:47]
            elif m == "late":
                time.sleep(0.3)
            elif m == "other_port":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as o:
                    o.sendto(bytes(p), peer)
                continue
            elif m == "bad_then_good":
                for bad in (p[:20], bytes([(4 << 3) | 3]) + bytes(p[1:])):
                    self.sock.sendto(bytes(bad), peer)
            self.sock.sendto(bytes(p), peer)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def exchange(mgr, mode, timeout=10.0):
    rs = Responder(mode)
    try:
        r = Rec()
        conn = mgr.sntp_connect(f"udp://127.0.0.1:{rs.port}", r)
        poll_until(mgr, lambda: r.of(MG_EV_SNTP_TIME) or r.ended(), timeout=timeout)
        for _ in range(5):  # late or duplicate answers would show up here
            mgr.poll(20)
        assert rs.requests == 1
        if not r.ended():
            conn.close()
            mgr.poll(0)
        return r
    finally:
        rs.close()


def test_good_reply_is_server_time(mgr):
    r = exchange(mgr, "good")
    (ms,) = r.of(MG_EV_SNTP_TIME)
    assert Responder.SERVER_MS <= ms < Responder.SERVER_MS + 1000
    assert r.of(MG_EV_ERROR) == []


def test_late_reply_within_timeout(mgr):
    r = exchange(mgr, "late")
    (ms,) = r.of(MG_EV_SNTP_TIME)
    assert ms >= Responder.SERVER_MS + 140  # half of a >= 300 ms round trip (ms rounding)


def test_bad_replies_ignored(mgr):
    r = exchange(mgr, "bad_then_good")
    assert len(r.of(MG_EV_SNTP_TIME)) == 1
    assert r.of(MG_EV_ERROR) == []


def test_kiss_of_death(mgr):
    r = exchange(mgr, "kiss")
    assert r.of(MG_EV_ERROR) == ["SNTP kiss-of-death: DENY"]
    assert r.of(MG_EV_SNTP_TIME) == []
    assert r.ended()


@pytest.mark.parametrize("mode", ["silent", "mode3", "origin", "other_port"])
def test_timeout(mgr, mode):
    # The default timeout is 3 s; the bound here only stops a hang.
    r = exchange(mgr, mode)
    assert r.of(MG_EV_SNTP_TIME) == []
    assert r.of(MG_EV_ERROR) == ["SNTP timeout"]
    assert r.ended()


def test_cymg_sntp_tool(chrony):
    tool = cymg_tool()
    out = subprocess.run([tool, "sntp", f"127.0.0.1:{chrony}"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines())
    when = time.strptime(lines["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert lines["time"].endswith("Z") and len(lines["time"]) == 24  # ...:SS.mmmZ
    import calendar

    assert abs(calendar.timegm(when) - time.time()) < 5
    assert lines["offset"].endswith(" ms") and lines["delay"].endswith(" ms")


def test_cymg_sntp_tool_failures():
    tool = cymg_tool()
    rs = Responder("silent")
    try:
        out = subprocess.run([tool, "sntp", f"udp://127.0.0.1:{rs.port}"], capture_output=True,
                             text=True, timeout=30)
    finally:
        rs.close()
    assert out.returncode == 1 and "SNTP timeout" in out.stderr
    out = subprocess.run([tool, "sntp", "a", "b"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage" in out.stderr
