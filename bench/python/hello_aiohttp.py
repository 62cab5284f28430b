#!/usr/bin/env python3
"""Hello world on aiohttp: web.Application with one route, no access log.

    hello_aiohttp.py PORT      (0: any free port)

Prints "port N" once listening; stops on SIGTERM/SIGINT."""
import asyncio
import signal
import sys

from aiohttp import web


async def hello(request):
    return web.Response(text="hello")  # text/plain; charset=utf-8


async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]))
    await site.start()
    print("port %d" % site._server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
