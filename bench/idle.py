"""Holds N idle connections to 127.0.0.1:PORT for the idle-memory measurements
(bench/lib.sh idle_bytes; bench/tls/run.sh, bench/http/idle.sh): each makes
one keep-alive GET and reads its answer (so the server has used its buffers
and its request state), then stays open. Prints "ready N" and waits for stdin
to close.

    python3 idle.py PORT N [tls|plain]     (default tls)"""

import resource
import select
import socket
import ssl
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "tls"
    if mode not in ("tls", "plain"):
        sys.exit("mode must be tls or plain")
    # N sockets and a few more: raise the soft descriptor limit to what is needed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 64
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    ctx = None
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the benchmark's throwaway certificate
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if ctx is not None:
            s = ctx.wrap_socket(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        got = b""
        while not got.endswith(b"hello"):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("connection closed before the answer")
            got += chunk
        held.append(s)
    # A server's keep-alive timeout may have closed the first ones while the
    # last were made (10,000 handshakes take minutes on a loaded machine): a
    # closed connection frees its memory, so the figure would be too low. A
    # held socket that polls readable has been closed (or sent unasked data).
    poller = select.poll()
    for s in held:
        poller.register(s.fileno(), select.POLLIN)
    gone = poller.poll(0)
    if gone:
        where = {s.fileno(): i for i, s in enumerate(held)}
        first = min(where[fd] for fd, _ in gone)
        s = held[first]
        s.setblocking(False)
        try:
            what = repr(s.recv(64)[:64]) or "end of stream"
        except (ssl.SSLError, OSError) as e:
            what = f"{type(e).__name__}: {e}"
        sys.exit(f"idle.py: {len(gone)} of {len(held)} connections were closed (or spoke) "
                 f"while held, the first #{first} (made first: #0): {what}; "
                 "the server's keep-alive timeout may be too short")
    print("ready", len(held), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
