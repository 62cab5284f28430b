#!/usr/bin/env python3
"""A TCP echo server: every byte received is sent back.

    python3 examples/python/tcp_echo.py [URL]

URL defaults to tcp://127.0.0.1:8000 (port 0 picks a free port). Stop it with
Ctrl+C or SIGTERM. Try it with:  nc 127.0.0.1 8000
"""

import argparse

from cymongoose import MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_ERROR, MG_EV_READ, Manager


def handler(conn, ev, data):
    if ev == MG_EV_ACCEPT:
        ip, port, _ = conn.remote_addr
        print(f"{conn.id}: connection from {ip}:{port}", flush=True)
    elif ev == MG_EV_READ:
        # The received bytes are consumed for us when this handler returns.
        conn.send(conn.recv_data())
    elif ev == MG_EV_ERROR:
        print(f"{conn.id}: error: {data}", flush=True)
    elif ev == MG_EV_CLOSE and not conn.is_listening:
        print(f"{conn.id}: closed", flush=True)


def main():
    parser = argparse.ArgumentParser(description="TCP echo server on cymongoose")
    parser.add_argument("url", nargs="?", default="tcp://127.0.0.1:8000",
                        help="address to listen on (default: %(default)s)")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.url)
    ip, port, _ = listener.local_addr
    print(f"echoing on {ip}:{port}; Ctrl+C to stop", flush=True)
    manager.run()  # returns on SIGINT/SIGTERM, after closing everything
    print("bye", flush=True)


if __name__ == "__main__":
    main()
