"""TLS through the Python binding against real peers on loopback: our server
against Python's ssl module (urllib, http.client, raw sockets) and curl; our
client (connect https://, ws_connect wss://) against Python's ssl server and
`openssl s_server`; TLS 1.2 and 1.3, RSA and EC; the contract's error rules."""

import http.client
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

import cymongoose
from cymongoose import (MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG,
                        MG_EV_READ, MG_EV_TLS_HS, Manager, TlsOpts)
from conftest import Recorder, free_port, in_thread, poll_until
from tls_peers import PEER_ENV, SslHttpServer

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


class Server:
    """An https listener on 127.0.0.1 answering "hello <uri>" (POST: the body
    back), recording every event of its accepted connections."""

    def __init__(self, mgr, tls=None, url="https://127.0.0.1:0", on_accept=None):
        self.events = []
        self.on_accept = on_accept
        self.lsn = mgr.listen(url, self, tls=tls) if tls is not None else mgr.listen(url, self)
        self.port = self.lsn.local_addr[1]

    def __call__(self, conn, ev, data):
        if ev == cymongoose.MG_EV_POLL:
            return
        self.events.append((conn.id, ev, data, conn.is_tls))
        if ev == MG_EV_ACCEPT and self.on_accept:
            self.on_accept(conn)
        if ev == MG_EV_HTTP_MSG:
            if data.method == "POST":
                conn.reply(200, data.body_bytes)
            else:
                conn.reply(200, b"hello " + data.uri.encode())

    def of(self, ev):
        return [d for _, e, d, _ in self.events if e == ev]

    def url(self, path="/"):
        return "https://127.0.0.1:%d%s" % (self.port, path)


def urlopen(url, ctx):
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        return r.status, r.read()


# ---- our server against Python's ssl module ----


def test_seed_pattern_tls_init_in_accept(mgr, certs):
    """The seed page: listen("https://..."), then tls_init in MG_EV_ACCEPT."""
    opts = certs.server_opts("ec")

    def on_accept(conn):
        assert conn.is_tls  # the seed's condition
        conn.tls_init(opts)

    srv = Server(mgr, on_accept=on_accept)
    assert srv.lsn.is_tls and srv.lsn.is_listening
    status, body = in_thread(mgr, lambda: urlopen(srv.url("/seed"), certs.client_context()))
    assert (status, body) == (200, b"hello /seed")
    assert srv.of(MG_EV_TLS_HS) == [None]
    assert srv.of(MG_EV_ERROR) == []


def test_seed_pattern_with_the_managers_default_handler(certs):
    """As the seed page writes it: Manager(handler), listen('https://...') with
    no handler of its own, tls_init in MG_EV_ACCEPT when conn.is_tls."""
    cert, key = certs.pem("server-rsa.crt"), certs.pem("server-rsa.key")

    def handler(conn, ev, data):
        if ev == MG_EV_ACCEPT and conn.is_tls:
            opts = TlsOpts(cert=cert, key=key)
            conn.tls_init(opts)
        elif ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"seed " + data.method.encode())

    m = Manager(handler)
    try:
        port = m.listen("https://127.0.0.1:0").local_addr[1]
        got = in_thread(m, lambda: urlopen("https://localhost:%d/" % port, certs.client_context()))
        assert got == (200, b"seed GET")
    finally:
        m.close()


@pytest.mark.parametrize("kind", ["ec", "rsa"])
@pytest.mark.parametrize("version", [V12, V13], ids=["tls1.2", "tls1.3"])
def test_listen_tls_keyword_http_client(mgr, certs, kind, version):
    srv = Server(mgr, tls=certs.server_opts(kind))

    def fetch():
        c = http.client.HTTPSConnection("localhost", srv.port, timeout=20,
                                        context=certs.client_context(version))
        out = []
        for path in ("/a", "/b"):  # keep-alive: two requests on one connection
            c.request("GET", path)
            r = c.getresponse()
            out.append((r.status, r.read()))
        out.append(c.sock.version())
        big = bytes(range(256)) * 4096 * 4  # 4 MiB, echoed
        c.request("POST", "/echo", body=big)
        r = c.getresponse()
        out.append(r.read() == big)
        c.close()
        return out

    got = in_thread(mgr, fetch)
    assert got == [(200, b"hello /a"), (200, b"hello /b"),
                   "TLSv1.2" if version == V12 else "TLSv1.3", True]
    assert len(srv.of(MG_EV_ACCEPT)) == 1 and len(srv.of(MG_EV_TLS_HS)) == 1


def test_tls_hs_comes_before_http_and_connections_are_tls(mgr, certs):
    srv = Server(mgr, tls=certs.server_opts())
    in_thread(mgr, lambda: urlopen(srv.url(), certs.client_context()))
    evs = [(e, tls) for cid, e, _, tls in srv.events if cid != srv.lsn.id]
    names = [e for e, _ in evs]
    assert names.index(MG_EV_ACCEPT) < names.index(MG_EV_TLS_HS) < names.index(MG_EV_HTTP_MSG)
    assert all(tls for e, tls in evs if e != MG_EV_CLOSE)


def test_pipelined_requests_over_tls(mgr, certs):
    srv = Server(mgr, tls=certs.server_opts())

    def run():
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        s = certs.client_context().wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10)))
        buf = b""
        while buf.count(b"hello /") < 10 or not buf.endswith(b"hello /9"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return buf

    buf = in_thread(mgr, run)
    assert [b"hello /%d" % i in buf for i in range(10)] == [True] * 10


def test_tcp_listener_with_tls_is_a_tls_echo(mgr, certs):
    rec = Recorder(echo=True)
    lsn = mgr.listen("tcp://127.0.0.1:0", rec, tls=certs.server_opts())
    port = lsn.local_addr[1]

    def run():
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        s = certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"ping over tls")
        got = b""
        while len(got) < 13:
            got += s.recv(100)
        s.close()
        return got

    assert in_thread(mgr, run) == b"ping over tls"
    accepted = [cid for cid, ev, _ in rec.events if ev == MG_EV_TLS_HS]
    assert len(accepted) == 1 and rec.received[accepted[0]] == b"ping over tls"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("flags", [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]],
                         ids=["tls1.2", "tls1.3"])
def test_curl_against_our_server(mgr, certs, flags):
    srv = Server(mgr, tls=certs.server_opts("rsa"))

    def run():
        return subprocess.run(["curl", "-sS", "--cacert", certs.path("ca.crt")] + flags +
                              [srv.url("/curl")], capture_output=True, timeout=30, env=PEER_ENV)

    out = in_thread(mgr, run)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello /curl"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_mutual_tls_with_curl(mgr, certs):
    """A server given a CA requires a client certificate that verifies."""
    srv = Server(mgr, tls=certs.server_opts(ca=certs.pem("ca.crt")))
    base = ["curl", "-sS", "--cacert", certs.path("ca.crt"), srv.url("/m")]

    def run(extra):
        return subprocess.run(base + extra, capture_output=True, timeout=30, env=PEER_ENV)

    ok = in_thread(mgr, lambda: run(["--cert", certs.path("client.crt"),
                                     "--key", certs.path("client.key")]))
    assert ok.returncode == 0 and ok.stdout == b"hello /m", ok.stderr
    none = in_thread(mgr, lambda: run([]))
    assert none.returncode != 0 and b"hello" not in none.stdout
    poll_until(mgr, lambda: len(srv.of(MG_EV_ERROR)) >= 1)
    other = in_thread(mgr, lambda: run(["--cert", certs.path("other-client.crt"),
                                        "--key", certs.path("other-client.key")]))
    assert other.returncode != 0 and b"hello" not in other.stdout
    poll_until(mgr, lambda: len(srv.of(MG_EV_ERROR)) >= 2)
    # The listener still serves.
    again = in_thread(mgr, lambda: run(["--cert", certs.path("client.crt"),
                                        "--key", certs.path("client.key")]))
    assert again.returncode == 0 and again.stdout == b"hello /m"


def plain_request(port):
    """A plain-text HTTP request to a TLS port: everything that came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def test_plain_client_on_tls_port_and_garbage(mgr, certs):
    srv = Server(mgr, tls=certs.server_opts())

    got = in_thread(mgr, lambda: plain_request(srv.port))
    assert b"hello" not in got and b"HTTP/1.1 200" not in got  # never plain text
    poll_until(mgr, lambda: len(srv.of(MG_EV_ERROR)) == 1)
    # The listener goes on serving TLS clients.
    assert in_thread(mgr, lambda: urlopen(srv.url("/after"), certs.client_context())) == \
        (200, b"hello /after")


def test_tls_client_on_plain_port(mgr, certs):
    lsn = mgr.listen("http://127.0.0.1:0", lambda c, ev, d: c.reply(200, b"plain")
                     if ev == MG_EV_HTTP_MSG else None)
    port = lsn.local_addr[1]

    def run():
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            certs.client_context().wrap_socket(raw, server_hostname="localhost")
        raw.close()

    in_thread(mgr, run)
    assert lsn.is_listening


# ---- the error rules of the contract ----


def test_tls_init_argument_and_state_errors(mgr, certs):
    srv = Server(mgr, tls=certs.server_opts())
    with pytest.raises(TypeError, match="TlsOpts"):
        srv.lsn.tls_init({"cert": b"x"})
    with pytest.raises(TypeError, match="TlsOpts"):
        srv.lsn.tls_init(None)
    with pytest.raises(TypeError, match="TlsOpts"):
        mgr.listen("https://127.0.0.1:0", tls="cert")
    with pytest.raises(TypeError, match="TlsOpts"):
        mgr.connect("https://127.0.0.1:1", tls=b"x")
    with pytest.raises(TypeError, match="TlsOpts"):
        mgr.ws_connect("wss://127.0.0.1:1/", tls=1)
    assert mgr.connections == (srv.lsn,)  # nothing was opened by the refused calls
    c = mgr.connect("tcp://127.0.0.1:%d" % free_port())
    poll_until(mgr, lambda: c.is_closing or c not in mgr.connections)
    poll_until(mgr, lambda: c not in mgr.connections)
    with pytest.raises(RuntimeError, match="closed"):
        c.tls_init(certs.server_opts())
    with pytest.raises(RuntimeError, match="closed"):
        c.tls_free()
    assert not c.is_tls


def bad_materials(certs):
    ec_crt, ec_key = certs.pem("server-ec.crt"), certs.pem("server-ec.key")
    return {
        "truncated cert": TlsOpts(cert=ec_crt[: len(ec_crt) // 2], key=ec_key),
        "truncated key": TlsOpts(cert=ec_crt, key=ec_key[: len(ec_key) // 2]),
        "key does not match": TlsOpts(cert=ec_crt, key=certs.pem("server-rsa.key")),
        "garbage": TlsOpts(cert=b"-----BEGIN CERTIFICATE-----\nnot base64\n", key=b"junk"),
    }


@pytest.mark.parametrize("which", ["truncated cert", "truncated key", "key does not match",
                                   "garbage"])
def test_bad_material_on_a_listener(mgr, certs, which):
    """Logged, listener keeps listening and is_tls; each accepted connection fails
    its handshake with the reason; tls_free then tls_init with good material works."""
    srv = Server(mgr)
    srv.lsn.tls_init(bad_materials(certs)[which])  # never raises
    assert srv.lsn.is_listening and srv.lsn.is_tls and not srv.lsn.is_closing
    kw = mgr.listen("https://127.0.0.1:0", tls=bad_materials(certs)[which])  # nor does tls=
    assert kw.is_listening and kw.is_tls

    def attempt():
        try:
            return urlopen(srv.url("/x"), certs.client_context())
        except (OSError, ssl.SSLError) as e:
            return e

    for _ in range(2):
        assert isinstance(in_thread(mgr, attempt), Exception)
    poll_until(mgr, lambda: len(srv.of(MG_EV_ERROR)) >= 2)
    errs = srv.of(MG_EV_ERROR)
    assert all(isinstance(e, str) and e for e in errs) and errs[0] == errs[1]
    assert srv.lsn.is_listening and srv.lsn in mgr.connections
    srv.lsn.tls_free()
    srv.lsn.tls_init(certs.server_opts())
    assert in_thread(mgr, attempt) == (200, b"hello /x")


def test_bad_material_on_a_connection_is_an_error_event(mgr, certs):
    """tls_init with bad material on an accepted connection: MG_EV_ERROR with the
    reason on it (no exception), then CLOSE; the listener and others unharmed."""
    bad = bad_materials(certs)["key does not match"]
    raised = []

    def on_accept(conn):
        try:
            conn.tls_init(bad)
        except Exception as e:  # the contract: never raises
            raised.append(e)

    srv = Server(mgr, on_accept=on_accept)
    good = Server(mgr, tls=certs.server_opts())

    def attempt(url):
        try:
            return urlopen(url, certs.client_context())
        except (OSError, ssl.SSLError) as e:
            return e

    assert isinstance(in_thread(mgr, lambda: attempt(srv.url())), Exception)
    poll_until(mgr, lambda: len(srv.of(MG_EV_CLOSE)) == 1)
    assert raised == []
    assert len(srv.of(MG_EV_ERROR)) == 1 and srv.of(MG_EV_ERROR)[0]
    assert srv.of(MG_EV_HTTP_MSG) == []
    assert in_thread(mgr, lambda: attempt(good.url("/g"))) == (200, b"hello /g")
    assert srv.lsn.is_listening


def test_no_certificate_by_the_end_of_accept(mgr, certs):
    """A TLS listener whose accepted connection got no certificate fails it with
    ERROR "no certificate", never answering in plain text."""
    srv = Server(mgr)  # https:// with neither tls= nor tls_init in ACCEPT

    got = in_thread(mgr, lambda: plain_request(srv.port))
    assert b"HTTP/" not in got and b"hello" not in got
    poll_until(mgr, lambda: len(srv.of(MG_EV_CLOSE)) == 1)
    errs = srv.of(MG_EV_ERROR)
    assert len(errs) == 1 and "no certificate" in errs[0]
    assert srv.of(MG_EV_HTTP_MSG) == []


def test_tls_free_then_tls_init_on_accepted_connection(mgr, certs):
    def on_accept(conn):
        conn.tls_init(certs.server_opts("rsa"))
        conn.tls_free()
        conn.tls_init(certs.server_opts("ec"))

    srv = Server(mgr, on_accept=on_accept)

    def run():
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        s = certs.client_context().wrap_socket(raw, server_hostname="localhost")
        cert = s.getpeercert()
        s.close()
        return cert

    cert = in_thread(mgr, run)
    assert cert is not None  # verified against the CA with the EC certificate


# ---- our client against Python's ssl server and openssl s_server ----


class Client:
    """Records a client connection's events; sends a GET at MG_EV_CONNECT (held by
    the library until the handshake is done), optionally calling tls_init first."""

    def __init__(self, opts=None, host="localhost"):
        self.events = []
        self.opts = opts
        self.host = host

    def __call__(self, conn, ev, data):
        if ev == cymongoose.MG_EV_POLL:
            return
        self.events.append((ev, data))
        if ev == MG_EV_CONNECT:
            if self.opts is not None:
                conn.tls_init(self.opts)
            conn.send(b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % self.host.encode())
        elif ev == MG_EV_HTTP_MSG:
            conn.close()

    def of(self, ev):
        return [d for e, d in self.events if e == ev]

    def done(self):
        return any(e == MG_EV_CLOSE for e, _ in self.events)


def run_client(mgr, url, handler, **kw):
    responses = []

    def wrapped(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            responses.append((data.status(), data.body_bytes))
        handler(conn, ev, data)

    c = mgr.connect(url, wrapped, **kw)
    poll_until(mgr, handler.done, timeout=20)
    return c, responses


@pytest.mark.parametrize("version", [V12, V13], ids=["tls1.2", "tls1.3"])
def test_our_client_against_python_ssl_server(mgr, certs, version):
    with SslHttpServer(certs, "server-rsa", version) as peer:
        cl = Client(TlsOpts(ca=certs.pem("ca.crt")))
        c, res = run_client(mgr, "https://localhost:%d" % peer.port, cl)
    assert cl.of(MG_EV_ERROR) == []
    assert res == [(200, b"hello over " + (b"TLSv1.2" if version == V12 else b"TLSv1.3"))]
    names = [e for e, _ in cl.events]
    assert names.index(MG_EV_CONNECT) < names.index(MG_EV_TLS_HS) < names.index(MG_EV_HTTP_MSG)


def test_our_client_tls_keyword_and_name(mgr, certs):
    """tls= on connect, and name= the host verified when the URL has an IP."""
    with SslHttpServer(certs, "alt") as peer:
        cl = Client()
        _, res = run_client(mgr, "https://127.0.0.1:%d" % peer.port, cl,
                            tls=TlsOpts(ca=certs.pem("ca.crt"), name="alt.example"))
    assert cl.of(MG_EV_ERROR) == [] and res[0][0] == 200


def test_our_client_verifies_by_default(mgr, certs):
    """No CA given: the system store, which does not hold the test CA."""
    with SslHttpServer(certs) as peer:
        cl = Client()
        _, res = run_client(mgr, "https://localhost:%d" % peer.port, cl)
    assert res == []
    errs = cl.of(MG_EV_ERROR)
    assert len(errs) == 1 and "certificate verify failed" in errs[0], errs


@pytest.mark.parametrize("cert,why", [("self", "self-signed"), ("untrusted", "local issuer"),
                                      ("expired", "expired"), ("wrong", "")])
def test_our_client_verification_failures(mgr, certs, cert, why):
    with SslHttpServer(certs, cert) as peer:
        cl = Client(TlsOpts(ca=certs.pem("ca.crt")))
        _, res = run_client(mgr, "https://localhost:%d" % peer.port, cl)
        assert res == []
        errs = cl.of(MG_EV_ERROR)
        assert len(errs) == 1 and "certificate verify failed" in errs[0], errs
        assert why.lower() in errs[0].lower(), errs
        # skip_verification turns off both the chain and the host-name checks.
        ok = Client(TlsOpts(skip_verification=True))
        _, res = run_client(mgr, "https://localhost:%d" % peer.port, ok)
        assert ok.of(MG_EV_ERROR) == [] and res[0][0] == 200


def test_our_client_wrong_host_name(mgr, certs):
    with SslHttpServer(certs) as peer:
        cl = Client(TlsOpts(ca=certs.pem("ca.crt"), name="other.example"))
        _, res = run_client(mgr, "https://localhost:%d" % peer.port, cl)
    errs = cl.of(MG_EV_ERROR)
    assert res == [] and len(errs) == 1 and "certificate verify failed" in errs[0]
    assert "hostname" in errs[0].lower() or "host" in errs[0].lower(), errs


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_our_client_against_openssl_s_server(mgr, certs):
    port = free_port()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-www",
                             "-cert", certs.path("server-ec.crt"),
                             "-key", certs.path("server-ec.key"), "-quiet"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=PEER_ENV)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("openssl s_server did not start")
                time.sleep(0.05)
        cl = Client(TlsOpts(ca=certs.pem("ca.crt")))
        got = []

        def collect(conn, ev, data):
            if ev == MG_EV_READ:
                got.append(conn.recv_data())
            cl(conn, ev, data)

        c = mgr.connect("tls://localhost:%d" % port, collect)
        poll_until(mgr, lambda: b"HTTP/1.0 200" in b"".join(got) and b"</HTML>" in
                   b"".join(got).upper() or cl.of(MG_EV_ERROR), timeout=20)
        assert cl.of(MG_EV_ERROR) == []
        text = b"".join(got)
        assert b"HTTP/1.0 200" in text and b"Protocol" in text
        c.close()
        poll_until(mgr, cl.done)
    finally:
        proc.kill()
        proc.wait()


def test_connect_from_another_thread(mgr, certs):
    """The any-thread path: connect(https://, tls=) from a worker while this
    thread polls."""
    srv = Server(mgr, tls=certs.server_opts())
    cl = Client()
    out = {}

    def worker():
        out["conn"] = mgr.connect("https://localhost:%d" % srv.port, cl,
                                  tls=TlsOpts(ca=certs.pem("ca.crt")))

    t = threading.Thread(target=worker)
    t.start()
    deadline = time.monotonic() + 20
    while not cl.done():
        assert time.monotonic() < deadline, "no answer"
        mgr.poll(10)
    t.join(10)
    assert cl.of(MG_EV_ERROR) == []
    msgs = cl.of(MG_EV_HTTP_MSG)
    assert len(msgs) == 1


def test_client_handshake_failure_leaves_others(mgr, certs):
    """A failing client and a working one side by side in one manager."""
    srv = Server(mgr, tls=certs.server_opts())
    bad = Client(TlsOpts(ca=certs.pem("other-ca.crt")))
    good = Client(TlsOpts(ca=certs.pem("ca.crt")))
    url = "https://localhost:%d" % srv.port
    mgr.connect(url, bad)
    _, res = run_client(mgr, url, good)
    poll_until(mgr, bad.done)
    assert len(bad.of(MG_EV_ERROR)) == 1 and good.of(MG_EV_ERROR) == []
    assert res == [(200, b"hello /x")]


def test_tls_init_misuse_after_the_handshake_and_on_udp(mgr, certs):
    """Options cannot change once the handshake started (RuntimeError); tls_free
    then closes the connection; UDP cannot take TLS."""
    seen = []

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            with pytest.raises(RuntimeError, match="handshake"):
                conn.tls_init(certs.server_opts())
            seen.append("refused")
            conn.reply(200, b"still fine")

    lsn = mgr.listen("https://127.0.0.1:0", server, tls=certs.server_opts())
    cl = Client(TlsOpts(ca=certs.pem("ca.crt")))
    freed = []

    def client(conn, ev, data):
        cl(conn, ev, data)
        if ev == MG_EV_HTTP_MSG:
            conn.tls_free()  # TLS cannot be taken back mid-stream: the connection closes
            freed.append(conn.is_closing)

    client.done = cl.done
    _, res = run_client(mgr, "https://localhost:%d" % lsn.local_addr[1], client)
    poll_until(mgr, cl.done)
    assert seen == ["refused"] and res == [(200, b"still fine")] and freed == [True]
    udp = mgr.listen("udp://127.0.0.1:0")
    with pytest.raises(RuntimeError, match="UDP"):
        udp.tls_init(certs.server_opts())
    assert not udp.is_tls


def test_tls_init_starts_tls_on_a_plain_tcp_client(mgr, certs):
    """tls_init in MG_EV_CONNECT of a tcp:// connection makes it a TLS client."""
    rec = Recorder(echo=True)
    lsn = mgr.listen("tls://127.0.0.1:0", rec, tls=certs.server_opts())
    got = []

    def client(conn, ev, data):
        if ev == MG_EV_CONNECT:
            conn.tls_init(TlsOpts(ca=certs.pem("ca.crt"), name="localhost"))
            conn.send(b"over tls")
        elif ev == MG_EV_TLS_HS:
            got.append("hs")
        elif ev == MG_EV_READ:
            got.append(conn.recv_data())
        elif ev == MG_EV_ERROR:
            got.append(data)

    c = mgr.connect("tcp://127.0.0.1:%d" % lsn.local_addr[1], client)
    poll_until(mgr, lambda: len(got) >= 2, timeout=20)
    assert got[:2] == ["hs", b"over tls"] and c.is_tls


def test_serve_dir_over_tls_byte_for_byte(mgr, certs, tmp_path):
    """Static files over TLS (SSL_sendfile with kernel TLS, else read + write)."""
    import os

    data = os.urandom(5 << 20) + b"end"
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "empty.txt").write_bytes(b"")

    def handler(conn, ev, msg):
        if ev == MG_EV_HTTP_MSG:
            conn.serve_dir(msg, str(tmp_path))

    port = mgr.listen("https://127.0.0.1:0", handler, tls=certs.server_opts()).local_addr[1]
    ctx = certs.client_context()

    def fetch():
        c = http.client.HTTPSConnection("localhost", port, timeout=30, context=ctx)
        out = []
        for path in ("/big.bin", "/empty.txt", "/big.bin"):  # keep-alive across files
            c.request("GET", path)
            r = c.getresponse()
            out.append((r.status, r.read()))
        c.request("GET", "/big.bin", headers={"Range": "bytes=-3"})
        r = c.getresponse()
        out.append((r.status, r.read()))
        c.close()
        return out

    got = in_thread(mgr, fetch)
    assert [s for s, _ in got] == [200, 200, 200, 206]
    assert got[0][1] == data and got[1][1] == b"" and got[2][1] == data and got[3][1] == b"end"
