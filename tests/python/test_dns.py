"""DNS from Python: Connection.resolve / resolve_cancel, Manager(dns=...) and
set_dns(), connects by name through the HTTP client, and the `cymg resolve`
tool. Against a dnsmasq started here on a free loopback port (A, AAAA, CNAME
chains, NXDOMAIN) and tests/data/dns_responder.py for slow and silent servers.
No test reads the machine's own resolv.conf or hosts file."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile

import pytest

from cymongoose import (
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    MG_EV_RESOLVE,
    Manager,
)

from conftest import cymg_tool, free_port, poll_until

HERE = os.path.dirname(os.path.abspath(__file__))
RESPONDER = os.path.join(HERE, "..", "data", "dns_responder.py")
# The servers are not ours: no sanitizer runtime preloaded into them (the ASan
# run of the binding preloads one for the interpreter).
SERVER_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def query_a(port, name, timeout=0.2):
    """A blocking A query to 127.0.0.1:port; the answer's bytes or None."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        try:
            return s.recv(512)
        except OSError:
            return None


@pytest.fixture(scope="module")
def dnsmasq():
    """dnsmasq on 127.0.0.1:<port> with the names of tests/c/test_dns.c."""
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.access(binary, os.X_OK):
        pytest.skip("dnsmasq not installed (make test installs dnsmasq-base)")
    # It may lose the probed port to another test before its bind: then it
    # exits and another port is tried.
    for _ in range(5):
        port = free_port(socket.SOCK_DGRAM)
        proc = subprocess.Popen(
            [binary, "--no-resolv", "--no-hosts", "--keep-in-foreground", f"--port={port}",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
             "--user=" + (os.environ.get("USER") or "root"), "--local-ttl=60",
             "--log-facility=/dev/null", "--host-record=one.test,127.0.0.1",
             "--host-record=both.test,127.0.0.1,::1", "--host-record=v6only.test,::1",
             "--cname=alias.test,mid.test", "--cname=mid.test,one.test",
             "--address=/nx.test/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=SERVER_ENV)
        for _ in range(100):
            if proc.poll() is not None or query_a(port, "one.test"):
                break
        if proc.poll() is None:
            break
    else:
        pytest.fail("dnsmasq did not start")
    yield port
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def responder():
    """tests/data/dns_responder.py: slow.*, silent.*, servfail.*, ... on one port."""
    proc = subprocess.Popen(["/usr/bin/python3", RESPONDER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=SERVER_ENV)
    port = int(proc.stdout.readline())
    yield port
    proc.stdin.close()  # it serves until stdin closes
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Events:
    """Records (conn_id, ev, data) of everything but POLL, READ and WRITE."""

    def __init__(self):
        self.log = []

    def __call__(self, conn, ev, data):
        if ev in (MG_EV_RESOLVE, MG_EV_ERROR, MG_EV_CONNECT, MG_EV_CLOSE, MG_EV_HTTP_MSG):
            self.log.append((conn.id, ev, data))

    def of(self, conn, ev=None):
        return [(e, d) for cid, e, d in self.log if cid == conn.id and (ev is None or e == ev)]


def dns_manager(port, **kw):
    """A Manager asking 127.0.0.1:port only, never the machine's own files."""
    m = Manager(dns=f"udp://127.0.0.1:{port}")
    m.set_dns(f"udp://127.0.0.1:{port}", resolv_conf="/nonexistent/resolv.conf",
              hosts_file="/nonexistent/hosts", **kw)
    return m


def test_resolve_on_listener_keeps_its_socket(dnsmasq):
    ev = Events()
    with dns_manager(dnsmasq) as m:
        lsn = m.listen("tcp://127.0.0.1:0", ev)
        local = lsn.local_addr
        lsn.resolve("http://alias.test:4321/x")  # a CNAME chain to 127.0.0.1
        poll_until(m, lambda: ev.of(lsn, MG_EV_RESOLVE))
        assert ev.of(lsn) == [(MG_EV_RESOLVE, None)]
        assert lsn.remote_addr == ("127.0.0.1", 4321, False)
        assert lsn.is_listening and not lsn.is_closing and lsn.local_addr == local
        # The listening socket still accepts.
        with socket.create_connection(local[:2], timeout=5):
            poll_until(m, lambda: len(m.connections) == 2)


def test_resolve_ports_and_families(dnsmasq):
    ev = Events()
    with dns_manager(dnsmasq) as m:
        c = m.listen("udp://127.0.0.1:0", ev)
        for url, want in [("one.test", ("127.0.0.1", 0, False)),
                          ("http://one.test/", ("127.0.0.1", 80, False)),
                          ("ws://one.test", ("127.0.0.1", 80, False)),
                          ("v6only.test", ("::1", 0, True)),
                          ("udp://one.test:5353", ("127.0.0.1", 5353, False))]:
            n = len(ev.of(c, MG_EV_RESOLVE))
            c.resolve(url)
            poll_until(m, lambda: len(ev.of(c, MG_EV_RESOLVE)) > n)
            assert c.remote_addr == want, url
        assert ev.of(c, MG_EV_ERROR) == []


def test_resolve_nxdomain_errors_then_closes(dnsmasq):
    ev = Events()
    with dns_manager(dnsmasq) as m:
        c = m.listen("udp://127.0.0.1:0", ev)
        c.resolve("x.nx.test")
        poll_until(m, lambda: ev.of(c, MG_EV_CLOSE))
        assert ev.of(c) == [(MG_EV_ERROR, "x.nx.test: name not found"), (MG_EV_CLOSE, None)]
        with pytest.raises(RuntimeError, match="closed"):
            c.resolve("one.test")
        with pytest.raises(RuntimeError, match="closed"):
            c.resolve_cancel()


def test_invalid_fails_without_a_query(responder):
    # The server never answers and a query would wait 60 s: .invalid is
    # answered at once (RFC 6761 6.4), well inside poll_until's guard.
    ev = Events()
    with dns_manager(responder, timeout_ms=30000, attempts=2) as m:
        c = m.listen("udp://127.0.0.1:0", ev)
        c.resolve("http://example.invalid/")
        poll_until(m, lambda: ev.of(c, MG_EV_CLOSE), timeout=5)
        assert ev.of(c, MG_EV_ERROR) == [(MG_EV_ERROR, "example.invalid: name not found")]


def test_resolve_timeout(responder):
    ev = Events()
    with dns_manager(responder, timeout_ms=100, attempts=2) as m:
        c = m.listen("udp://127.0.0.1:0", ev)
        c.resolve("silent.test")
        poll_until(m, lambda: ev.of(c, MG_EV_CLOSE), timeout=10)
        assert ev.of(c, MG_EV_ERROR) == [(MG_EV_ERROR, "silent.test: DNS timeout after 2 attempts")]


def test_resolve_cancel_no_later_event(responder):
    ev = Events()
    with dns_manager(responder, timeout_ms=3000) as m:
        a = m.listen("udp://127.0.0.1:0", ev)
        b = m.listen("udp://127.0.0.1:0", ev)
        a.resolve("slow.test")  # answered after 300 ms
        m.poll(10)
        a.resolve_cancel()
        a.resolve_cancel()  # nothing in progress: harmless
        # The same name asked again answers after the first one would have.
        b.resolve("slow.test")
        poll_until(m, lambda: ev.of(b, MG_EV_RESOLVE))
        assert b.remote_addr == ("192.0.2.10", 0, False)
        for _ in range(10):
            m.poll(20)
        assert ev.of(a) == [] and not a.is_closing and a.remote_addr != ("192.0.2.10", 0, False)


def test_resolve_bad_arguments(dnsmasq):
    with dns_manager(dnsmasq) as m:
        c = m.listen("udp://127.0.0.1:0")
        with pytest.raises(TypeError):
            c.resolve(b"one.test")
        with pytest.raises(TypeError):
            c.resolve()
        for bad in ["", "http://", "one\0.test"]:
            with pytest.raises(ValueError):
                c.resolve(bad)
        assert not c.is_closing


def test_manager_dns_arguments(dnsmasq):
    for bad in ["tcp://127.0.0.1:53", "not an address", "", "udp://a.b.c:53"]:
        with pytest.raises(ValueError):
            Manager(dns=bad)
    with pytest.raises(TypeError):
        Manager(dns=53)
    with Manager(None, False, None, dns=None) as m:  # the positional signature is unchanged
        with pytest.raises(ValueError):
            m.set_dns("udp://127.0.0.1:53", timeout_ms=0)
        with pytest.raises(ValueError):
            m.set_dns("udp://127.0.0.1:53", attempts=-1)
        with pytest.raises(TypeError):
            m.set_dns("udp://127.0.0.1:53", hosts_file=3)
        m.set_dns(None)  # back to resolv.conf's servers
        m.set_dns(f"udp://127.0.0.1:{dnsmasq}, 127.0.0.2")
    with pytest.raises(RuntimeError):
        m.set_dns(None)


def test_hosts_file_and_resolv_conf(dnsmasq):
    d = tempfile.mkdtemp(prefix="cymg-pydns-")
    hosts, conf = os.path.join(d, "hosts"), os.path.join(d, "resolv.conf")
    with open(hosts, "w") as f:
        f.write("192.0.2.55 myhost.example\n")
    with open(conf, "w") as f:
        f.write(f"nameserver 127.0.0.1\nsearch test\noptions ndots:2\n")
    ev = Events()
    try:
        with Manager() as m:
            m.set_dns(f"udp://127.0.0.1:{dnsmasq}", resolv_conf=conf, hosts_file=hosts)
            c = m.listen("udp://127.0.0.1:0", ev)
            c.resolve("myhost.example")
            poll_until(m, lambda: ev.of(c, MG_EV_RESOLVE))
            assert c.remote_addr == ("192.0.2.55", 0, False)
            c.resolve("alias")  # the search list of that resolv.conf: alias.test
            poll_until(m, lambda: len(ev.of(c, MG_EV_RESOLVE)) == 2)
            assert c.remote_addr == ("127.0.0.1", 0, False)
    finally:
        shutil.rmtree(d)


def test_http_client_connects_by_name(dnsmasq):
    def serve(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"hello " + data.uri.encode())

    ev = Events()
    with dns_manager(dnsmasq) as m:
        port = m.listen("http://127.0.0.1:0", serve).local_addr[1]
        got = {}

        def client(conn, e, data):
            ev(conn, e, data)
            if e == MG_EV_CONNECT:
                conn.send(f"GET /by-name HTTP/1.1\r\nHost: alias.test:{port}\r\n\r\n")
            elif e == MG_EV_HTTP_MSG:
                got["status"], got["body"] = data.status(), data.body_text
                conn.close()

        # both.test: ::1 first, where nothing listens, then 127.0.0.1.
        for name in ["alias.test", "both.test"]:
            got.clear()
            c = m.connect(f"http://{name}:{port}/", client)
            poll_until(m, lambda: ev.of(c, MG_EV_CLOSE))
            assert [e for e, _ in ev.of(c)] == [MG_EV_RESOLVE, MG_EV_CONNECT, MG_EV_HTTP_MSG,
                                                MG_EV_CLOSE]
            assert got == {"status": 200, "body": "hello /by-name"}
        c = m.connect(f"http://x.nx.test:{port}/", client)
        poll_until(m, lambda: ev.of(c, MG_EV_CLOSE))
        assert ev.of(c) == [(MG_EV_ERROR, "x.nx.test: name not found"), (MG_EV_CLOSE, None)]


def run_tool(*args):
    return subprocess.run([cymg_tool(), "resolve", *args], capture_output=True, text=True,
                          timeout=30)


def test_cymg_resolve_tool(dnsmasq):
    srv = f"udp://127.0.0.1:{dnsmasq}"
    out = run_tool("alias.test", "--type", "A", "--server", srv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["alias.test\t60\tCNAME\tmid.test",
                                       "mid.test\t60\tCNAME\tone.test",
                                       "one.test\t60\tA\t127.0.0.1"]
    out = run_tool("both.test", "--server", srv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["both.test\t60\tAAAA\t::1", "both.test\t60\tA\t127.0.0.1"]
    out = run_tool("--server", srv, "--type", "aaaa", "v6only.test")
    assert out.stdout.splitlines() == ["v6only.test\t60\tAAAA\t::1"]


def test_cymg_resolve_tool_failures(dnsmasq):
    srv = f"udp://127.0.0.1:{dnsmasq}"
    out = run_tool("x.nx.test", "--server", srv)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == "cymg resolve: x.nx.test: name not found\n"
    out = run_tool("v6only.test", "--type", "A", "--server", srv)  # dnsmasq refuses it
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("cymg resolve: v6only.test: ") and out.stderr.count("\n") == 1
    for args in [(), ("a", "b"), ("a", "--type", "MX"), ("a", "--server", "tcp://x"), ("-x", "a"),
                 ("a", "--type")]:
        out = run_tool(*args)
        assert out.returncode == 2, args
        assert out.stderr.count("\n") == 1 and out.stdout == "", args
