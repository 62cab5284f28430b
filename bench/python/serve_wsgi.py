"""Serves a WSGI app through cymongoose.wsgi for the benchmark:
    python3 serve_wsgi.py MODULE:APP PORT [WORKERS]
Port 0 picks a free one; prints "port N" once listening."""

import importlib
import sys

from cymongoose.wsgi import WSGIServer


def main():
    modname, _, attr = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(modname), attr or "app")
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    server = WSGIServer(app, workers=workers)
    lsn = server.listen("http://127.0.0.1:%d" % int(sys.argv[2]))
    print("port", lsn.local_addr[1], flush=True)
    server.run()


if __name__ == "__main__":
    main()
