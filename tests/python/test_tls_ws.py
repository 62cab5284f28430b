"""WebSocket over TLS (wss://) through the binding: our server against
websocket-client (python3-websocket) and Node's `ws` package, our ws_connect
client against Node's `ws` over https and against our own server."""

import os
import shutil
import ssl
import subprocess

import pytest

import cymongoose
from cymongoose import (MG_EV_CLOSE, MG_EV_ERROR, MG_EV_HTTP_MSG, MG_EV_TLS_HS, MG_EV_WS_MSG,
                        MG_EV_WS_OPEN, WEBSOCKET_OP_BINARY, WEBSOCKET_OP_TEXT, TlsOpts)
from conftest import in_thread, poll_until
from tls_peers import NODE_DIR


class WssEcho:
    """Upgrades every request and echoes each message with its opcode."""

    def __init__(self):
        self.errors = []
        self.hs = 0

    def __call__(self, conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            conn.ws_send(data.data, data.flags & 0x0F)
        elif ev == MG_EV_TLS_HS:
            self.hs += 1
        elif ev == MG_EV_ERROR:
            self.errors.append(data)


def node_ready():
    if shutil.which("node") is None:
        pytest.skip("node not installed (Debian: nodejs npm)")
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        subprocess.run([os.path.join(NODE_DIR, "..", "..", "scripts", "deps-node.sh")], check=True,
                       timeout=300)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
def test_websocket_client_over_wss(mgr, certs, version):
    websocket = pytest.importorskip("websocket")  # Debian: python3-websocket
    srv = WssEcho()
    lsn = mgr.listen("wss://127.0.0.1:0", srv, tls=certs.server_opts("rsa"))
    port = lsn.local_addr[1]
    ctx = certs.client_context(version)

    def run():
        ws = websocket.create_connection("wss://localhost:%d/ws" % port, timeout=20,
                                         sslopt={"context": ctx})
        out = []
        for payload in (b"", b"x", bytes(range(256)) * 300, os.urandom(1 << 20)):
            ws.send_binary(payload)
            out.append(ws.recv() == payload)
        ws.send("text é")
        out.append(ws.recv())
        out.append(ws.sock.version())
        ws.close()
        return out

    got = in_thread(mgr, run)
    assert got == [True] * 4 + ["text é", "TLSv1.2" if version == ssl.TLSVersion.TLSv1_2
                                else "TLSv1.3"]
    assert srv.errors == [] and srv.hs == 1


def test_node_ws_client_against_our_wss_server(mgr, certs):
    node_ready()
    srv = WssEcho()
    lsn = mgr.listen("wss://127.0.0.1:0", srv, tls=certs.server_opts("ec"))
    url = "wss://localhost:%d/ws" % lsn.local_addr[1]

    def run():
        return subprocess.run(["node", os.path.join(NODE_DIR, "wss.js"), "client", url,
                               certs.path("ca.crt")], capture_output=True, text=True, timeout=90)

    out = in_thread(mgr, run, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr
    assert srv.errors == []


class WsClient:
    def __init__(self, opts=None, send=()):
        self.opts = opts
        self.send = list(send)
        self.msgs = []
        self.errors = []
        self.closed = False

    def __call__(self, conn, ev, data):
        if ev == cymongoose.MG_EV_CONNECT and self.opts is not None:
            conn.tls_init(self.opts)
        elif ev == MG_EV_WS_OPEN:
            for op, payload in self.send:
                conn.ws_send(payload, op)
        elif ev == MG_EV_WS_MSG:
            self.msgs.append(data.data)
        elif ev == MG_EV_ERROR:
            self.errors.append(data)
        elif ev == MG_EV_CLOSE:
            self.closed = True


def test_our_ws_client_against_node_wss_server(mgr, certs):
    node_ready()
    proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "wss.js"), "server",
                             certs.path("server-rsa.crt"), certs.path("server-rsa.key")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        port = int(line.split()[1])
        big = os.urandom(3 << 20)
        cl = WsClient(TlsOpts(ca=certs.pem("ca.crt")),
                      [(WEBSOCKET_OP_TEXT, "hi"), (WEBSOCKET_OP_BINARY, big)])
        c = mgr.ws_connect("wss://localhost:%d/" % port, cl)
        poll_until(mgr, lambda: len(cl.msgs) >= 3 or cl.errors or cl.closed, timeout=30)
        assert cl.errors == []
        assert cl.msgs[0].startswith(b"tls TLSv1.")
        assert cl.msgs[1:] == [b"hi", big]
        assert c.is_tls and c.is_websocket
        c.close()
        poll_until(mgr, lambda: cl.closed)
        # Default verification: the system store does not know the test CA.
        bad = WsClient()
        mgr.ws_connect("wss://localhost:%d/" % port, bad)
        poll_until(mgr, lambda: bad.closed, timeout=20)
        assert len(bad.errors) == 1 and "certificate verify failed" in bad.errors[0]
    finally:
        proc.stdin.close()
        proc.wait(10)


def test_our_ws_client_against_our_wss_server(mgr, certs):
    srv = WssEcho()
    lsn = mgr.listen("wss://127.0.0.1:0", srv, tls=certs.server_opts())
    cl = WsClient(send=[(WEBSOCKET_OP_TEXT, "one"), (WEBSOCKET_OP_BINARY, b"\x00" * 70000)])
    c = mgr.ws_connect("wss://127.0.0.1:%d/ws" % lsn.local_addr[1], cl,
                       tls=TlsOpts(ca=certs.pem("ca.crt")))
    poll_until(mgr, lambda: len(cl.msgs) == 2 or cl.errors, timeout=20)
    assert cl.errors == [] and cl.msgs == [b"one", b"\x00" * 70000]
    c.close()
    poll_until(mgr, lambda: cl.closed)
