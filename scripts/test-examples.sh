#!/usr/bin/env bash
# Smoke-tests every example: --help answers, and each server does its job for a
# real client on loopback. Usage: scripts/test-examples.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ex=$build/examples
py=/usr/bin/python3
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "examples: FAILED: $*" >&2; exit 1; }

for bin in "$ex"/*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  "$bin" --help | grep -qi "usage" || fail "$(basename "$bin") --help"
done

# Waits until something listens on a TCP port (servers print their banner first).
wait_tcp() { for _ in $(seq 100); do "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

port=$(free_port)
"$ex"/tcp_echo "tcp://127.0.0.1:$port" >/dev/null & pids+=($!)
wait_tcp "$port" || fail "tcp_echo did not listen"
"$py" - "$port" <<'PY' || fail "tcp_echo did not echo"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
data = bytes(range(256)) * 4096  # 1 MiB
s.sendall(data)
got = b""
while len(got) < len(data):
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
sys.exit(0 if got == data else 1)
PY

port=$(free_port)
"$ex"/udp_echo "udp://127.0.0.1:$port" >/dev/null & pids+=($!)
"$py" - "$port" <<'PY' || fail "udp_echo did not echo"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
for _ in range(50):  # the server may still be starting: retry
    s.sendto(b"datagram", ("127.0.0.1", int(sys.argv[1])))
    try:
        if s.recvfrom(100)[0] == b"datagram": sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
PY
echo "examples: all smoke tests passed"
