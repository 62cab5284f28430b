#!/usr/bin/env python3
"""The threading guide's pattern: the event loop answers fast requests itself
and hands slow ones to a pool of worker threads, which wake the loop up with
the result.

    python3 examples/python/threaded_server.py [URL] [--workers N]

URL defaults to http://127.0.0.1:8000. Try:

    curl http://127.0.0.1:8000/status                 # fast path, in the loop
    curl -d 'some data' http://127.0.0.1:8000/process # slow path, in a worker

Rules it follows (see the threading guide): workers get conn.id, never the
Connection; results travel through Manager.wakeup() (small ones in the
payload, large ones stashed under a key); connections are tracked by id and
forgotten at MG_EV_CLOSE. SIGINT/SIGTERM stop the loop, the workers get a
poison pill each, and the manager is closed last.
"""

import argparse
import hashlib
import queue
import signal
import threading
import time
import uuid

from cymongoose import MG_EV_CLOSE, MG_EV_HTTP_MSG, MG_EV_WAKEUP, Manager

INLINE_LIMIT = 8000  # larger results are stashed, only their key is sent

work_queue = queue.Queue()
stash = {}
stash_lock = threading.Lock()
connections = {}  # conn_id -> Connection, owned by the loop thread
shutdown_requested = False


def slow_work(data):
    """Stands in for a database query or CPU-heavy work."""
    time.sleep(0.01)
    return b"sha256=" + hashlib.sha256(data).hexdigest().encode() + b"\n"


def worker(manager):
    while True:
        work = work_queue.get()
        if work is None:  # poison pill
            break
        try:
            result = slow_work(work["data"])
        except Exception as e:  # a failed job still gets an answer
            result = b"ERROR:" + str(e).encode()
        if len(result) > INLINE_LIMIT:
            key = uuid.uuid4().hex
            with stash_lock:
                stash[key] = result
            payload = b"KEY:" + key.encode()
        else:
            payload = b"VAL:" + result
        manager.wakeup(work["conn_id"], payload)


def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        if data.uri == "/status":  # fast path
            conn.reply_json({"status": "ok", "queued": work_queue.qsize()})
        elif data.uri == "/process":  # slow path
            connections[conn.id] = conn
            work_queue.put({"conn_id": conn.id, "data": data.body_bytes})
        else:
            conn.reply(404, b"Not found\n")
    elif ev == MG_EV_WAKEUP:
        if conn.id not in connections:
            return  # the client went away meanwhile
        if data.startswith(b"KEY:"):
            with stash_lock:
                result = stash.pop(data[4:].decode())
        else:
            result = data[4:]
        if result.startswith(b"ERROR:"):
            conn.reply(500, result[6:])
        else:
            conn.reply(200, result)
    elif ev == MG_EV_CLOSE:
        connections.pop(conn.id, None)


def main():
    global shutdown_requested
    parser = argparse.ArgumentParser(description="worker-pool HTTP server on cymongoose")
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="worker threads (default: 4)")
    args = parser.parse_args()

    def on_signal(sig, frame):
        global shutdown_requested
        shutdown_requested = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    manager = Manager(handler, enable_wakeup=True)
    threads = [threading.Thread(target=worker, args=(manager,), daemon=True)
               for _ in range(args.workers)]
    for t in threads:
        t.start()
    ip, port, _ = manager.listen(args.url).local_addr
    print(f"serving http://{ip}:{port}/ with {args.workers} workers; Ctrl+C to stop",
          flush=True)
    try:
        while not shutdown_requested:
            manager.poll(100)
    finally:
        for _ in threads:
            work_queue.put(None)
        for t in threads:
            t.join(timeout=5.0)
        manager.close()
    print("bye", flush=True)


if __name__ == "__main__":
    main()
