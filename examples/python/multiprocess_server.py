#!/usr/bin/env python3
"""Pre-forked workers, the way gunicorn runs them: a parent starts N worker
processes, each with its own Manager listening with reuse_port=True on the
same port, so the kernel spreads the connections over them and every core
runs Python (each process has its own GIL).

    python3 examples/python/multiprocess_server.py [URL] [--workers N]

URL defaults to http://127.0.0.1:8000 (port 0 picks a free one, which all
workers then share); N to the number of CPUs. Try:

    curl http://127.0.0.1:8000/       # "hello from worker 1 (pid 1234)"
    curl http://127.0.0.1:8000/pid    # the same as JSON

The parent serves nothing itself: it waits for a signal or for a worker to
die. SIGINT/SIGTERM are passed on to every worker, which closes its listener,
lets requests already begun finish, closes the idle connections and exits; the
parent waits for them all and says "bye". A worker that dies on its own stops
the rest and the parent exits 1.
"""

import argparse
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
import urllib.parse

from cymongoose import MG_EV_HTTP_MSG, Manager

GRACE_S = 10.0  # a client that never finishes its request must not hold the stop


def worker(index, url, ready):
    """One worker process: a Manager on url with reuse_port=True."""
    stopping = False

    def on_signal(sig, frame):
        nonlocal stopping
        stopping = True
        # Ctrl+C reaches a worker twice (from the terminal to the whole group,
        # and from the parent); the second must not find the default action,
        # which Python puts back while it exits, so from now on: ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pid = os.getpid()

    def handler(conn, ev, data):
        if ev != MG_EV_HTTP_MSG:
            return
        if data.uri == "/":
            conn.reply(200, "hello from worker %d (pid %d)\n" % (index, pid),
                       headers={"Content-Type": "text/plain"})
        elif data.uri == "/pid":
            conn.reply_json({"worker": index, "pid": pid})
        else:
            conn.reply(404, b"Not found\n")
        if stopping:
            conn.drain()  # it was in flight when the stop came: answer, then end

    mgr = Manager(handler)
    try:
        lsn = mgr.listen(url, reuse_port=True)
    except RuntimeError as e:
        ready.put((index, None, str(e)))
        mgr.close()
        sys.exit(1)
    ready.put((index, lsn.local_addr[1], None))
    while not stopping:
        mgr.poll(100)
    # Graceful stop: no new connections; idle ones close now; those with a
    # request partly read stay until it is answered (the handler drains them).
    lsn_id = lsn.id
    lsn.close()
    for c in mgr.connections:
        if c.id != lsn_id and not c.is_closing and c.recv_len == 0:
            c.drain()
    deadline = time.monotonic() + GRACE_S
    while any(c.id != lsn_id for c in mgr.connections) and time.monotonic() < deadline:
        mgr.poll(50)
    left = sum(c.id != lsn_id for c in mgr.connections)
    mgr.close()
    if left:
        print("worker %d: %d connections still open after %.0f s closed" % (index, left, GRACE_S),
              file=sys.stderr, flush=True)
        sys.exit(1)


def same_port_url(url, port):
    """url with its port replaced (what the first worker got for port 0)."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (u.scheme, host, port)


def main():
    parser = argparse.ArgumentParser(description="pre-forked HTTP workers sharing one port")
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of CPUs)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    stop_signal = None

    def on_signal(sig, frame):
        nonlocal stop_signal
        stop_signal = sig

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    # spawn: each worker starts from a clean interpreter, nothing of the
    # parent's state (or a Manager, which must never cross a fork) comes along.
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    procs = []
    status = 0

    def start(index, url):
        """Starts a worker and waits until it listens; returns its port or None."""
        p = ctx.Process(target=worker, args=(index, url, ready), name="worker-%d" % index)
        p.start()
        procs.append(p)
        while stop_signal is None:
            try:
                _, port, err = ready.get(timeout=0.2)
            except queue.Empty:
                if not p.is_alive():
                    print("worker %d exited before listening" % index, file=sys.stderr)
                    return None
                continue
            if err is not None:
                print("worker %d: %s" % (index, err), file=sys.stderr)
                return None
            return port
        return None

    port = start(0, args.url)
    url = same_port_url(args.url, port) if port is not None else None
    for i in range(1, args.workers):
        if url is None or start(i, url) is None:
            url = None
            break
    if url is None and stop_signal is None:
        status = 1  # a worker could not listen: stop the ones that did
    elif url is not None:
        print("serving %s/ with %d worker processes (pids %s); Ctrl+C to stop"
              % (url, len(procs), " ".join(str(p.pid) for p in procs)), flush=True)
        sentinels = [p.sentinel for p in procs]
        done = []
        while stop_signal is None and not done:
            done = multiprocessing.connection.wait(sentinels, timeout=1.0)
        for p in procs:
            if p.sentinel in done:
                # Its pipe closes a moment before it can be reaped; waiting
                # here also gives a signal that came with the exit its turn.
                p.join(5)
        if stop_signal is None:
            for p in procs:
                if p.sentinel in done:
                    print("worker %s exited (code %s): stopping" % (p.name, p.exitcode),
                          file=sys.stderr)
            status = 1

    for p in procs:  # pass the stop on (SIGTERM when a worker died)
        if p.is_alive():
            try:
                os.kill(p.pid, stop_signal or signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        p.join(GRACE_S + 5)
        if p.is_alive():
            print("worker %s did not stop: killed" % p.name, file=sys.stderr)
            p.kill()
            p.join()
        if p.exitcode != 0:
            print("worker %s ended with code %s" % (p.name, p.exitcode), file=sys.stderr)
            status = 1
    ready.close()
    ready.join_thread()
    print("bye", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
