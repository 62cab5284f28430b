"""Shared helpers for the cymongoose tests. Every socket here is on loopback."""

import os
import socket
import time

import pytest

import cymongoose


def poll_until(mgr, cond, timeout=5.0, step_ms=10):
    """Poll mgr until cond() is true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached within %.1fs" % timeout)
        mgr.poll(step_ms)


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An event handler that records (conn_id, ev, data) and can echo.
    MG_EV_POLL, which comes at every poll, is left out unless polls=True."""

    def __init__(self, echo=False, polls=False):
        self.events = []
        self.echo = echo
        self.polls = polls
        self.received = {}

    def __call__(self, conn, ev, data):
        if ev == cymongoose.MG_EV_POLL and not self.polls:
            return
        self.events.append((conn.id, ev, data))
        if ev == cymongoose.MG_EV_READ:
            chunk = conn.recv_data()
            self.received[conn.id] = self.received.get(conn.id, b"") + chunk
            if self.echo:
                conn.send(chunk)

    def names(self, conn_id):
        return [cymongoose.event_name(ev) for cid, ev, _ in self.events if cid == conn_id]


def _io_uring_available():
    """Whether this build has the io_uring backend and the kernel lets it start
    (kernel.io_uring_disabled or a seccomp filter may refuse it)."""
    old = os.environ.get("CYMG_BACKEND")
    os.environ["CYMG_BACKEND"] = "io_uring"
    try:
        cymongoose.Manager().close()
        return True
    except Exception:
        return False
    finally:
        if old is None:
            del os.environ["CYMG_BACKEND"]
        else:
            os.environ["CYMG_BACKEND"] = old


@pytest.fixture(params=["epoll", "poll", "select"] + (["io_uring"] if _io_uring_available() else []))
def both_backends(request, monkeypatch):
    """A Manager on each backend in turn (CYMG_BACKEND is read when a Manager is
    made, so Managers the test makes itself use it too)."""
    monkeypatch.setenv("CYMG_BACKEND", request.param)
    m = cymongoose.Manager()
    assert m.backend == request.param and request.param in repr(m)
    yield m
    m.close()


@pytest.fixture
def mgr():
    m = cymongoose.Manager()
    yield m
    m.close()


def in_thread(mgr, fn, timeout=30.0, step_ms=5):
    """Runs fn() in a thread (a blocking peer: urllib, http.client, sockets) while
    polling mgr on this one; returns fn's result or raises its exception."""
    import threading

    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive():
        if time.monotonic() > deadline:
            pytest.fail("peer thread did not finish within %.1fs" % timeout)
        mgr.poll(step_ms)
    if "error" in out:
        raise out["error"]
    return out.get("result")


def http_server(handler, **kwargs):
    """A Manager listening on http://127.0.0.1:<free port>; returns (mgr, port)."""
    m = cymongoose.Manager(handler, **kwargs)
    lsn = m.listen("http://127.0.0.1:0")
    return m, lsn.local_addr[1]


def wsgi_serving(app, **kwargs):
    """A context manager: a cymongoose.wsgi.WSGIServer for app on a free
    loopback port, run() on a thread; yields (server, port) and closes it."""
    import contextlib
    import threading

    from cymongoose.wsgi import WSGIServer

    @contextlib.contextmanager
    def cm():
        srv = WSGIServer(app, **kwargs)
        port = srv.listen("http://127.0.0.1:0").local_addr[1]
        t = threading.Thread(target=srv.run, kwargs={"poll_ms": 20}, daemon=True)
        t.start()
        try:
            yield srv, port
        finally:
            srv.close()
            t.join(30)
            assert not t.is_alive(), "WSGIServer.run() did not end after close()"

    return cm()


def raw_exchange(port, data, until=None, timeout=30.0):
    """Sends data on a fresh loopback socket and reads until `until` (bytes)
    has been seen that many times (a (needle, count) pair), or EOF."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            if until is not None and got.count(until[0]) >= until[1]:
                return got
            if time.monotonic() > deadline:
                pytest.fail("no complete answer within %.1fs: %r" % (timeout, got[:500]))
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def recv_to_eof(sock, got=b""):
    """Reads sock until the peer closes; returns got + what came."""
    got = bytearray(got)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(got)
        got += chunk


def wait_refused(port, timeout=30.0):
    """Waits until nothing listens on 127.0.0.1:port any more. A connection
    queued at a listener as it closes is reset by the kernel: not yet refused."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "port %d still accepts" % port
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass
        time.sleep(0.02)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The throwaway TLS material of tests/data/mkcerts.sh (CA, RSA and EC server
    certificates, client, expired, self-signed, ...), made once per session."""
    from tls_peers import make_certs

    return make_certs(str(tmp_path_factory.mktemp("certs")))


def cymg_tool():
    """The cymg tool of the build tree the package was loaded from (skips if absent)."""
    import os

    build = os.path.dirname(os.path.dirname(os.path.dirname(cymongoose.__file__)))
    path = os.path.join(build, "tools", "cymg")
    if not os.access(path, os.X_OK):
        pytest.skip("the cymg tool is not in this build tree")
    return path


def peer_env():
    """The environment for peer programs (mosquitto, node...): without the
    sanitizer runtime an ASan run preloads for our extension."""
    import os

    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


class Mosquitto:
    """A mosquitto broker of our own (tcp, and unless tcp_only websockets and TLS
    listeners, on free loopback ports), started from its own config in a
    temporary folder."""

    def __init__(self, folder, tcp_only=False):
        import os
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.certs = os.path.join(folder, "certs")
        subprocess.run(["sh", os.path.join(root, "tests", "data", "mkcerts.sh"), self.certs],
                       check=True, capture_output=True, timeout=60)
        self.ca = os.path.join(self.certs, "ca.crt")
        self.port, self.ws_port, self.tls_port = free_port(), free_port(), free_port()
        conf = os.path.join(folder, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                "per_listener_settings false\nallow_anonymous true\npersistence false\n"
                "max_keepalive 65535\n"
                # as root mosquitto would switch to its own user, who cannot read our files
                + ("user root\n" if os.geteuid() == 0 else "") +
                f"listener {self.port} 127.0.0.1\n")
            if not tcp_only:
                f.write(f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\n"
                        f"listener {self.tls_port} 127.0.0.1\n"
                        f"cafile {self.ca}\n"
                        f"certfile {os.path.join(self.certs, 'server-ec.crt')}\n"
                        f"keyfile {os.path.join(self.certs, 'server-ec.key')}\n")
        self.log = open(os.path.join(folder, "mosquitto.log"), "w+")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf, "-v"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=peer_env())
        deadline = time.monotonic() + 15
        for port in (self.port,) if tcp_only else (self.port, self.ws_port, self.tls_port):
            while True:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    pytest.fail("mosquitto did not start: " + self.log.read()[-2000:])
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def state(self):
        """How mosquitto is doing, for a failure message: its exit status if it
        ended, and the end of its log."""
        self.log.flush()
        with open(self.log.name) as f:
            tail = f.read()[-1500:]
        return "mosquitto %s; log ends:\n%s" % (
            "running" if self.proc.poll() is None else "exited %s" % self.proc.returncode, tail)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    """A private mosquitto (see Mosquitto), one per test module."""
    b = Mosquitto(str(tmp_path_factory.mktemp("mosquitto")))
    yield b
    b.stop()


def paho_client(version=4, client_id="", **kw):
    """A paho-mqtt (Debian python3-paho-mqtt) client, not yet connected."""
    import paho.mqtt.client as paho

    proto = paho.MQTTv5 if version == 5 else paho.MQTTv311
    if version == 5:
        return paho.Client(client_id=client_id, protocol=proto, **kw)
    return paho.Client(client_id=client_id, protocol=proto, clean_session=kw.pop("clean_session", True), **kw)


async def blocking(fn, *args, hang=60.0):
    """Runs a blocking call (a client) in the default executor from a coroutine."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.run_in_executor(None, fn, *args), hang)


class AsgiRunning:
    """async with AsgiRunning(app) as (server, port): a started
    cymongoose.asgi.ASGIServer on a free loopback port, stopped after."""

    def __init__(self, app, **kw):
        from cymongoose.asgi import ASGIServer

        self.server = ASGIServer(app, **kw)

    async def __aenter__(self):
        lsn = await self.server.start("http://127.0.0.1:0")
        return self.server, lsn.local_addr[1]

    async def __aexit__(self, *exc):
        import asyncio

        await asyncio.wait_for(self.server.stop(), 60.0)


class PahoPeer:
    """A paho-mqtt 1.6 client on its own network thread against host:port,
    recording CONNACK codes, messages, SUBACK codes, PUBACK/PUBCOMP mids and
    disconnects. version 4 or 5; transport "tcp" or "websockets"; tls: a CA
    file; kw goes to paho.Client (clean_session...)."""

    def __init__(self, port, version=4, client_id="", transport="tcp", ca=None, connect=True,
                 host="127.0.0.1", cert=None, **kw):
        import threading

        self.connacks, self.msgs, self.subacks, self.acked, self.disconnects = [], [], [], [], []
        self.lock = threading.Lock()
        self.port, self.host, self.version = port, host, version
        self.cli = paho_client(version, client_id, transport=transport, **kw)
        if transport == "websockets":
            self.cli.ws_set_options(path="/mqtt")
        if ca is not None:  # cert: (certfile, keyfile) of a client certificate
            self.cli.tls_set(ca_certs=ca, certfile=cert and cert[0], keyfile=cert and cert[1])
        self.cli.on_connect = self._on_connect
        self.cli.on_message = lambda c, u, m: self.msgs.append(m)
        self.cli.on_subscribe = self._on_subscribe
        self.cli.on_publish = lambda c, u, mid: self.acked.append(mid)
        self.cli.on_disconnect = lambda c, u, rc, *p: self.disconnects.append(rc)
        self.started = False
        if connect:
            self.start()

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connacks.append((int(getattr(rc, "value", rc)), flags.get("session present", 0)))

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks.append([int(getattr(g, "value", g)) for g in granted])

    def start(self, **connect_kw):
        # the network thread connects: a TLS or WebSocket handshake needs our
        # loop, polled by the test thread meanwhile
        self.cli.connect_async(self.host, self.port, **connect_kw)
        self.cli.loop_start()
        self.started = True

    def stop(self):
        if self.started:
            try:
                self.cli.disconnect()
            finally:
                self.cli.loop_stop()
            self.started = False

    def kill(self):
        """Ends the TCP connection with no DISCONNECT (an abrupt failure)."""
        self.cli.loop_stop()
        sock = self.cli.socket()
        if sock is not None:
            import socket as _s

            sock.shutdown(_s.SHUT_RDWR)
            sock.close()
        self.started = False

    def texts(self):
        return [(m.topic, m.payload) for m in list(self.msgs)]


def mqtt_rl(n):
    """An MQTT variable byte integer (remaining length)."""
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_s(b):
    """A length-prefixed MQTT string / binary field."""
    if isinstance(b, str):
        b = b.encode()
    return len(b).to_bytes(2, "big") + b


def mqtt_pkt(first, body):
    return bytes([first]) + mqtt_rl(len(body)) + body


def mqtt_connect_pkt(client_id, clean=True, keepalive=60, version=4):
    flags = 0x02 if clean else 0
    props = b"\x00" if version == 5 else b""
    return mqtt_pkt(0x10, mqtt_s("MQTT") + bytes([version, flags]) + keepalive.to_bytes(2, "big")
                    + props + mqtt_s(client_id))


def mqtt_read(sock, timeout=10.0):
    """One whole MQTT packet (first byte, body) from a blocking socket; None at EOF."""
    sock.settimeout(timeout)

    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    head = exact(1)
    if head is None:
        return None
    n, mult = 0, 1
    while True:
        b = exact(1)
        if b is None:
            return None
        n += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = exact(n) if n else b""
    return None if body is None else (head[0], body)


def broker_on(mgr, url="mqtt://127.0.0.1:0", **kw):
    """mgr.mqtt_broker listening on url; returns (broker, its first port)."""
    b = mgr.mqtt_broker(url, **kw)
    return b, b.listeners[0].local_addr[1]


def paho_ready(mgr, port, sub=None, qos=0, **kw):
    """A connected paho peer (CONNACK seen), subscribed to sub if given."""
    p = PahoPeer(port, **kw)
    poll_until(mgr, lambda: p.connacks, timeout=10)
    if sub is not None:
        n = len(p.subacks)
        p.cli.subscribe(sub, qos)
        poll_until(mgr, lambda: len(p.subacks) > n, timeout=10)
    return p


def settle(mgr, ms=300):
    """Polls for a while: lets messages that should NOT arrive have their chance."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        mgr.poll(10)
