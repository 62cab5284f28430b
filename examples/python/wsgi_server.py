#!/usr/bin/env python3
"""A WSGI application served by cymongoose.wsgi: the loop does the I/O, a pool
of worker threads runs the application.

    python3 examples/python/wsgi_server.py [URL] [--flask]

URL defaults to http://127.0.0.1:8000 (port 0 picks a free port). With --flask
the application is a small Flask app (python3-flask). Stop it with Ctrl+C or
SIGTERM. Try:

    curl http://127.0.0.1:8000/
    curl -d 'some data' http://127.0.0.1:8000/echo
    curl http://127.0.0.1:8000/count/5
"""

import argparse

from cymongoose.wsgi import WSGIServer


def app(environ, start_response):
    """A plain WSGI application (PEP 3333)."""
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Hello from a WSGI app on cymongoose\n"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "text/plain"))])
        return [body]
    if path.startswith("/count/") and path[7:].isdigit():
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%d\n" % i for i in range(int(path[7:])))  # small: sent with Content-Length
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def flask_app():
    from flask import Flask, request

    fapp = Flask(__name__)

    @fapp.route("/")
    def index():
        return "Hello from Flask on cymongoose\n"

    @fapp.route("/echo", methods=["POST"])
    def echo():
        return request.get_data()

    return fapp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    ap.add_argument("--flask", action="store_true", help="serve a small Flask app instead")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    server = WSGIServer(flask_app() if args.flask else app, workers=args.workers)
    lsn = server.listen(args.url)
    host = lsn.local_addr[0]
    print("Serving on http://%s:%d/ (Ctrl+C to stop)" % (host, lsn.local_addr[1]), flush=True)
    server.run()
    print("bye")


if __name__ == "__main__":
    main()
