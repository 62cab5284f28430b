"""Holds N idle TLS connections to 127.0.0.1:PORT for bench/tls/run.sh: each
does its handshake and one keep-alive GET (so the server has used its buffers),
then stays open. Prints "ready N" and waits for stdin to close.

    python3 idle.py PORT N"""

import socket
import ssl
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the benchmark's throwaway certificate
    held = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        got = b""
        while not got.endswith(b"hello"):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("connection closed before the answer")
            got += chunk
        held.append(s)
    print("ready", len(held), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
