#!/usr/bin/python3
"""A DNS responder on 127.0.0.1 (UDP and TCP, one free port) for the cases no
real server produces on demand. The first label of the question picks the
behaviour; prints the port on its first line, then serves until stdin closes.

  tc.*        UDP: truncated, empty; TCP: A 192.0.2.7
  wrongid.*   an answer with another id (6.6.6.6), then the real one (192.0.2.8)
  otheraddr.* an answer from another socket (6.6.6.6), then the real one (192.0.2.9)
  loop.*      our id, a compression pointer to itself in the answer
  slow.*      A 192.0.2.10 after 300 ms
  silent.*    nothing, ever
  servfail.*  SERVFAIL
  count.*     A 192.0.2.11 TTL 60 and counts queries ("queries.*" answers the count
              as 10.0.0.N)
  wrongq.*    our id but another question (evil.test, 6.6.6.6), then the real one
              (192.0.2.12)
  many.*      A 192.0.2.13
  ports.*     A 10.0.H.L TTL 0: H*256+L distinct UDP source ports seen so far
"""
import socket
import struct
import sys
import threading
import time

from dnslib import AAAA, A, DNSHeader, DNSQuestion, DNSRecord, QTYPE, RCODE, RR

counts = {"n": 0}
ports = set()


def answer(q, ip, ttl=60):
    r = q.reply()
    if q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=ttl))
    return r


def handle(data, tcp):
    """Returns a list of (delay_s, bytes, from_other_socket)."""
    try:
        q = DNSRecord.parse(data)
    except Exception:
        return []
    label = str(q.q.qname).split(".")[0]
    if label == "tc":
        if tcp:
            return [(0, answer(q, "192.0.2.7").pack(), False)]
        r = q.reply()
        r.header.tc = 1
        return [(0, r.pack(), False)]
    if label == "wrongid":
        bad = answer(q, "6.6.6.6")
        bad.header.id = (q.header.id + 1) & 0xFFFF
        return [(0, bad.pack(), False), (0.05, answer(q, "192.0.2.8").pack(), False)]
    if label == "otheraddr":
        return [(0, answer(q, "6.6.6.6").pack(), True),
                (0.05, answer(q, "192.0.2.9").pack(), False)]
    if label == "loop":
        r = q.reply().pack()
        # ANCOUNT 1 and a record whose owner name points at itself.
        r = r[:6] + struct.pack(">H", 1) + r[8:]
        ofs = len(r)
        r += struct.pack(">HHHIH", 0xC000 | ofs, 1, 1, 60, 4) + bytes([1, 2, 3, 4])
        return [(0, r, False)]
    if label == "slow":
        return [(0.3, answer(q, "192.0.2.10").pack(), False)]
    if label == "silent":
        return []
    if label == "servfail":
        r = q.reply()
        r.header.rcode = RCODE.SERVFAIL
        return [(0, r.pack(), False)]
    if label == "count":
        counts["n"] += 1
        return [(0, answer(q, "192.0.2.11").pack(), False)]
    if label == "wrongq":
        bad = DNSRecord(DNSHeader(id=q.header.id, qr=1, ra=1), q=DNSQuestion("evil.test"),
                        a=RR("evil.test", QTYPE.A, rdata=A("6.6.6.6"), ttl=60))
        return [(0, bad.pack(), False), (0.05, answer(q, "192.0.2.12").pack(), False)]
    if label == "many":
        return [(0, answer(q, "192.0.2.13").pack(), False)]
    if label == "ports":
        n = len(ports)
        return [(0, answer(q, "10.0.%d.%d" % (n >> 8, n & 255), ttl=0).pack(), False)]
    if label == "queries":
        return [(0, answer(q, "10.0.0.%d" % counts["n"], ttl=0).pack(), False)]
    r = q.reply()
    r.header.rcode = RCODE.NXDOMAIN
    return [(0, r.pack(), False)]


def udp_loop(sock, other):
    while True:
        data, peer = sock.recvfrom(4096)
        ports.add(peer[1])

        def reply(data=data, peer=peer):
            for delay, out, from_other in handle(data, False):
                time.sleep(delay)
                (other if from_other else sock).sendto(out, peer)

        threading.Thread(target=reply, daemon=True).start()


def tcp_client(c):
    with c:
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            got = c.recv(4096)
            if not got:
                return
            buf += got
        n = struct.unpack(">H", buf[:2])[0]
        for delay, out, _ in handle(buf[2:2 + n], True):
            time.sleep(delay)
            c.sendall(struct.pack(">H", len(out)) + out)


def tcp_loop(lsn):
    while True:
        c, _ = lsn.accept()
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


def main():
    # One port for both: bind TCP at a free port, then UDP at the same one.
    for _ in range(50):
        lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsn.bind(("127.0.0.1", 0))
        port = lsn.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
            break
        except OSError:
            lsn.close()
            udp.close()
    lsn.listen(16)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    threading.Thread(target=udp_loop, args=(udp, other), daemon=True).start()
    threading.Thread(target=tcp_loop, args=(lsn,), daemon=True).start()
    print(port, flush=True)
    sys.stdin.read()  # until the test closes our stdin or exits


if __name__ == "__main__":
    main()
