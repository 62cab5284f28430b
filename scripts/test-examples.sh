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
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
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
# WebSocket echo, with Node's ws package as the peer (installed by deps-node.sh).
port=$(free_port)
"$ex"/ws_echo "ws://127.0.0.1:$port" >/dev/null & pids+=($!)
wait_tcp "$port" || fail "ws_echo did not listen"
NODE_PATH=tests/node/node_modules node -e '
  const WebSocket = require("ws");
  const ws = new WebSocket(process.argv[1]);
  const t = setTimeout(() => process.exit(1), 5000);
  ws.on("open", () => ws.send("echo me"));
  ws.on("message", (m) => { clearTimeout(t); process.exit(String(m) === "echo me" ? 0 : 1); });
  ws.on("error", () => process.exit(1));' "ws://127.0.0.1:$port/ws" || fail "ws_echo did not echo"
# cymg ws: stdin lines out, echoes back on stdout, end of input closes cleanly.
got=$(printf 'one\ntwo\n' | "$build"/tools/cymg ws "ws://127.0.0.1:$port/ws" 2>/dev/null) || fail "cymg ws exit code"
[ "$got" = "$(printf 'one\ntwo')" ] || fail "cymg ws output: $got"

# One manager per core: several workers on one port answer; SIGTERM lets a
# request that was half read when it came finish, then everything exits 0.
"$ex"/http_multicore "http://127.0.0.1:0" --workers 3 >"$build/http_multicore.out" & mc=$!; pids+=("$mc")
port=
for _ in $(seq 100); do
  port=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$build/http_multicore.out")
  [ -n "$port" ] && break; sleep 0.05
done
[ -n "$port" ] || fail "http_multicore printed no address"
for _ in $(seq 10); do
  curl -sf "http://127.0.0.1:$port/" | grep -q "^hello from worker [0-2]$" || fail "http_multicore reply"
done
"$py" - "$port" "$mc" <<'PY' || fail "http_multicore did not finish the request in flight"
import os, signal, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
# One request whole and the next one's first half: once the first answer is
# back, the server has read the half too.
s.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n")
got = b""
while got.count(b"hello from worker") < 1:
    chunk = s.recv(4096)
    if not chunk: sys.exit(1)
    got += chunk
os.kill(int(sys.argv[2]), signal.SIGTERM)
deadline = time.monotonic() + 20
while True:  # every worker has begun its stop once the port refuses connections
    if time.monotonic() > deadline: sys.exit(1)
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5).close()
    except ConnectionRefusedError:
        break
    time.sleep(0.02)
s.sendall(b"Host: x\r\n\r\n")
while True:  # the second answer, then the end of the connection
    chunk = s.recv(4096)
    if not chunk: break
    got += chunk
sys.exit(0 if got.count(b"hello from worker") == 2 else 1)
PY
wait "$mc" || fail "http_multicore exit code after SIGTERM"
grep -q "http_multicore: stopped" "$build/http_multicore.out" || fail "http_multicore did not say stopped"

# The cymg tool: serve a folder, fetch from it, fail clearly.
cymg=$build/tools/cymg
"$cymg" --help | grep -q "serve" || fail "cymg --help"
"$cymg" --version | grep -q "^cymg [0-9]" || fail "cymg --version"
port=$(free_port)
"$cymg" serve examples/www --listen "http://127.0.0.1:$port" >/dev/null & pids+=($!)
wait_tcp "$port" || fail "cymg serve did not listen"
[ "$("$cymg" get "http://127.0.0.1:$port/hello.txt")" = "Hello from libcymg." ] || fail "cymg get body"
"$cymg" get -i "http://127.0.0.1:$port/hello.txt" | grep -q "^HTTP/1.1 200 OK" || fail "cymg get -i"
"$cymg" get "http://127.0.0.1:$port/files/" | grep -q "data.csv" || fail "cymg serve listing"
if "$cymg" get "http://127.0.0.1:$port/missing" 2>/dev/null >/dev/null; then fail "cymg get 404 exit code"; fi
msg=$("$cymg" get "http://127.0.0.1:$port/missing" 2>&1 >/dev/null || true)
case "$msg" in *"HTTP 404"*) ;; *) fail "cymg get 404 message: $msg" ;; esac
curl -sf "http://127.0.0.1:$port/index.html" | cmp -s - examples/www/index.html || fail "curl via cymg serve"

echo "examples: all smoke tests passed"
