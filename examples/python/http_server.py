#!/usr/bin/env python3
"""A small HTTP server: text, JSON, query variables, a chunked and an SSE reply.

    python3 examples/python/http_server.py [URL] [--root DIR]

URL defaults to http://127.0.0.1:8000 (port 0 picks a free port). Stop it with
Ctrl+C or SIGTERM. Try:

    curl http://127.0.0.1:8000/
    curl http://127.0.0.1:8000/api/status
    curl 'http://127.0.0.1:8000/api/sum?a=2&b=40'
    curl -d '{"name": "x"}' http://127.0.0.1:8000/api/echo
    curl http://127.0.0.1:8000/stream
    curl http://127.0.0.1:8000/events

With --root DIR, other paths are served as files from DIR (index.html, ranges,
conditional requests); without it they get 404.
"""

import argparse
import time

from cymongoose import MG_EV_HTTP_MSG, Manager, json_get_str

STARTED = time.time()
ROOT = None  # --root


def route(conn, msg):
    if msg.uri == "/":
        conn.reply(200, "Hello from cymongoose! You asked for %s %s\n" % (msg.method, msg.uri))
    elif msg.uri == "/api/status":
        conn.reply_json({"status": "ok", "uptime_s": round(time.time() - STARTED, 3)})
    elif msg.uri == "/api/sum":
        try:
            a, b = float(msg.query_var("a") or 0), float(msg.query_var("b") or 0)
        except ValueError:
            conn.reply_json({"error": "a and b must be numbers"}, status_code=400)
            return
        conn.reply_json({"sum": a + b})
    elif msg.uri == "/api/echo":
        if msg.method != "POST":
            conn.reply(405, b"POST only\n", {"Allow": "POST"})
            return
        conn.reply_json({
            "length": len(msg.body_bytes),
            "content_type": msg.header("Content-Type"),
            "name": json_get_str(msg.body_bytes, "$.name"),  # None unless JSON with a name
        })
    elif msg.uri == "/stream":
        for i in range(3):
            conn.http_chunk("chunk %d\n" % i)  # the first call starts a chunked reply
        conn.http_chunk(b"")  # the empty chunk ends it
    elif msg.uri == "/events":
        for i in range(3):
            conn.http_sse("tick", str(i))
        conn.http_chunk(b"")
    elif ROOT is not None:
        conn.serve_dir(msg, ROOT)
    else:
        conn.reply(404, b"Not found\n")


def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        route(conn, data)


def main():
    parser = argparse.ArgumentParser(description="HTTP server on cymongoose")
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--root", help="serve other paths as files from this folder")
    args = parser.parse_args()
    global ROOT
    ROOT = args.root
    manager = Manager(handler)
    listener = manager.listen(args.url)
    ip, port, _ = listener.local_addr
    print(f"serving http://{ip}:{port}/ ; Ctrl+C to stop", flush=True)
    manager.run()  # returns on SIGINT/SIGTERM, after closing everything
    print("bye", flush=True)


if __name__ == "__main__":
    main()
