#!/usr/bin/env python3
"""Fetches a URL with a GET request and prints the status and the body.

    python3 examples/python/http_client.py URL [--timeout SECONDS]

Exits with 0 when a response arrived (whatever its status), 1 otherwise.
"""

import argparse
import sys

from cymongoose import (
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    Manager,
    url_host,
    url_port,
    url_uri,
)


def main():
    parser = argparse.ArgumentParser(description="HTTP GET with cymongoose")
    parser.add_argument("url", help="e.g. http://127.0.0.1:8000/api/status")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")
    args = parser.parse_args()

    state = {"done": False, "ok": False}
    host = url_host(args.url)
    if ":" in host:
        host = "[%s]" % host  # an IPv6 literal in the Host header
    if url_port(args.url) != 80:
        host += ":%d" % url_port(args.url)

    def handler(conn, ev, data):
        if ev == MG_EV_CONNECT:
            conn.send("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % (url_uri(args.url), host))
        elif ev == MG_EV_HTTP_MSG:
            print(data.status())
            sys.stdout.write(data.body_text)
            sys.stdout.flush()
            state["ok"] = True
            conn.close()
        elif ev == MG_EV_ERROR:
            print("error: %s" % data, file=sys.stderr)
        elif ev == MG_EV_CLOSE:
            state["done"] = True

    with Manager() as manager:
        manager.connect(args.url, handler)
        left_ms = int(args.timeout * 1000)
        while not state["done"] and left_ms > 0:
            manager.poll(50)
            left_ms -= 50
    if not state["done"]:
        print("error: no response within %gs" % args.timeout, file=sys.stderr)
    return 0 if state["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
