"""TLS helpers for the Python tests: the throwaway certificates (made once per
session by tests/data/mkcerts.sh) and peers built on Python's ssl module."""

import http.server
import os
import ssl
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MKCERTS = os.path.join(ROOT, "tests", "data", "mkcerts.sh")
NODE_DIR = os.path.join(ROOT, "tests", "node")
# The environment for peer programs (curl, openssl): without the ASan runtime
# the sanitizer pass of scripts/test.sh preloads for the extension, which curl
# does not survive.
PEER_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


class Certs:
    """The material of mkcerts.sh in one folder: path(name) and pem(name)."""

    def __init__(self, folder):
        self.dir = folder

    def path(self, name):
        return os.path.join(self.dir, name)

    def pem(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def server_opts(self, kind="ec", **kw):
        import cymongoose

        name = {"ec": "server-ec", "rsa": "server-rsa"}.get(kind, kind)
        return cymongoose.TlsOpts(cert=self.pem(name + ".crt"), key=self.pem(name + ".key"), **kw)

    def client_context(self, version=None, cert=None):
        """An ssl client context trusting only the test CA; version pins the
        protocol (ssl.TLSVersion); cert names a client certificate to present."""
        ctx = ssl.create_default_context(cafile=self.path("ca.crt"))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        if cert is not None:
            ctx.load_cert_chain(self.path(cert + ".crt"), self.path(cert + ".key"))
        return ctx


def make_certs(folder):
    subprocess.run(["sh", MKCERTS, folder], check=True, timeout=120)
    return Certs(folder)


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("hello over %s" % self.connection.version()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class SslHttpServer:
    """Python's http.server behind ssl, in a thread, on 127.0.0.1: answers GET
    with "hello over <TLS version>". Use as a context manager."""

    def __init__(self, certs, cert="server-ec", version=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.path(cert + ".crt"), certs.path(cert + ".key"))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
