#!/usr/bin/env python3
"""Serves an ASGI app (module:attribute, from this directory) with
cymongoose.asgi, as uvicorn is run beside it:

    serve_cymongoose_asgi.py PORT MODULE:APP      (PORT 0: any free port)

Prints "port N" once listening; stops on SIGTERM/SIGINT."""
import asyncio
import importlib
import signal
import sys

from cymongoose.asgi import ASGIServer


async def main():
    module, attr = sys.argv[2].split(":")
    server = ASGIServer(getattr(importlib.import_module(module), attr))
    listener = await server.start("http://127.0.0.1:%d" % int(sys.argv[1]))
    print("port %d" % listener.local_addr[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
