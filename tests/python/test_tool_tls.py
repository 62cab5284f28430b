"""The cymg tool over TLS: `cymg serve --tls-cert F --tls-key F` against curl and
Python's ssl module, `cymg get https://` (verifying; --cacert; -k) against our
server and Python's ssl server, `cymg ws wss://` against our wss echo."""

import os
import shutil
import subprocess
import urllib.request

import pytest

from cymongoose import MG_EV_HTTP_MSG, MG_EV_WS_MSG
from conftest import cymg_tool, free_port, in_thread
from tls_peers import PEER_ENV, ROOT, SslHttpServer

WWW = os.path.join(ROOT, "examples", "www")


@pytest.fixture
def https_serve(certs):
    """`cymg serve examples/www` on https://127.0.0.1:<port>; yields the port."""
    tool = cymg_tool()
    port = free_port()
    proc = subprocess.Popen([tool, "serve", WWW, "--listen", "https://127.0.0.1:%d" % port,
                             "--tls-cert", certs.path("server-ec.crt"),
                             "--tls-key", certs.path("server-ec.key")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once listening
        assert "serving" in line and "https://" in line, (line, proc.stderr.read())
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def run(*args, **kw):
    return subprocess.run([cymg_tool()] + list(args), capture_output=True, timeout=60, **kw)


def hello():
    with open(os.path.join(WWW, "hello.txt"), "rb") as f:
        return f.read()


def test_serve_tls_with_python_ssl_and_curl(https_serve, certs):
    url = "https://localhost:%d/hello.txt" % https_serve
    with urllib.request.urlopen(url, context=certs.client_context(), timeout=20) as r:
        assert r.read() == hello()
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "--cacert", certs.path("ca.crt"), url],
                             capture_output=True, timeout=30, env=PEER_ENV)
        assert out.returncode == 0 and out.stdout == hello(), out.stderr


def test_get_https_verifies(https_serve, certs):
    url = "https://localhost:%d/hello.txt" % https_serve
    ok = run("get", "--cacert", certs.path("ca.crt"), url)
    assert ok.returncode == 0 and ok.stdout.strip() == hello().strip(), ok.stderr
    # The system store does not hold the test CA: refused, with OpenSSL's reason.
    no = run("get", url)
    assert no.returncode != 0 and no.stdout == b""
    assert b"certificate verify failed" in no.stderr, no.stderr
    # -k skips the chain and host checks.
    k = run("get", "-k", "https://127.0.0.1:%d/hello.txt" % https_serve)
    assert k.returncode == 0 and k.stdout.strip() == hello().strip(), k.stderr
    head = run("get", "-i", "--cacert", certs.path("ca.crt"), url)
    assert head.returncode == 0 and head.stdout.startswith(b"HTTP/1.1 200")


def test_get_https_against_python_ssl_server(certs):
    cymg_tool()
    with SslHttpServer(certs, "server-rsa") as peer:
        ok = run("get", "--cacert", certs.path("ca.crt"), "https://localhost:%d/" % peer.port)
        bad = run("get", "--cacert", certs.path("other-ca.crt"),
                  "https://localhost:%d/" % peer.port)
    assert ok.returncode == 0 and ok.stdout.startswith(b"hello over TLSv1."), ok.stderr
    assert bad.returncode != 0 and b"certificate verify failed" in bad.stderr


def test_tool_usage_errors(certs):
    assert run("serve", WWW, "--tls-cert", certs.path("server-ec.crt")).returncode == 2
    no_tls = run("serve", WWW, "--listen", "https://127.0.0.1:%d" % free_port())
    assert no_tls.returncode == 2 and b"--tls-cert" in no_tls.stderr
    assert run("get", "--cacert").returncode == 2
    assert run("ws", "-k").returncode == 2
    # Bad material stops `serve` at once with the reason.
    bad = run("serve", WWW, "--listen", "https://127.0.0.1:%d" % free_port(),
              "--tls-cert", certs.path("server-ec.crt"), "--tls-key", certs.path("server-rsa.key"))
    assert bad.returncode == 1 and bad.stderr, bad.stderr
    missing = run("get", "--cacert", "/nonexistent/ca.pem", "https://127.0.0.1:1/")
    assert missing.returncode != 0 and missing.stderr


def test_ws_over_wss(mgr, certs):
    tool = cymg_tool()

    def echo(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            conn.ws_send(data.data, data.flags & 0x0F)

    lsn = mgr.listen("wss://127.0.0.1:0", echo, tls=certs.server_opts())
    url = "wss://localhost:%d/ws" % lsn.local_addr[1]

    def go(*flags):
        return subprocess.run([tool, "ws"] + list(flags) + [url], input=b"one\ntwo\n",
                              capture_output=True, timeout=60)

    ok = in_thread(mgr, lambda: go("--cacert", certs.path("ca.crt")))
    assert ok.returncode == 0 and ok.stdout == b"one\ntwo\n", ok.stderr
    bad = in_thread(mgr, lambda: go())
    assert bad.returncode != 0 and b"certificate verify failed" in bad.stderr
    k = in_thread(mgr, lambda: go("-k"))
    assert k.returncode == 0 and k.stdout == b"one\ntwo\n"
