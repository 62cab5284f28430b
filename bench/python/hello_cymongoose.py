#!/usr/bin/env python3
"""Hello world on cymongoose, written as an application would write it: one
Manager, one http:// listener, a handler that answers every MG_EV_HTTP_MSG
with conn.reply(200, b"hello") (Content-Type: text/plain is the default).

    hello_cymongoose.py PORT      (0: any free port)

Prints "port N" once listening; stops on SIGTERM/SIGINT (Manager.run)."""
import sys

from cymongoose import MG_EV_HTTP_MSG, Manager

BODY = b"hello"


def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        conn.reply(200, BODY)


def main():
    manager = Manager(handler)
    listener = manager.listen("http://127.0.0.1:%d" % int(sys.argv[1]))
    print("port %d" % listener.local_addr[1], flush=True)
    manager.run(1000)


if __name__ == "__main__":
    main()
