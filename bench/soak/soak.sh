#!/usr/bin/env bash
# The soak run (`make soak`; not in CI, and not one of bench/run.sh's benchmarks,
# which is why this is not called run.sh): SOAK_SECONDS (default 3600) of mixed
# load (bench/soak/soak.py) against `cymg serve` over a folder of static files
# and the examples/ws_echo server, both on 127.0.0.1, sampling their memory,
# descriptors and connections every SOAK_INTERVAL seconds (default 5).
# Exits 1 when a server died, normal clients got wrong answers, or a sampled
# figure grows without bound (the rule is in soak.py and bench/README.md).
#
#   SOAK_SECONDS=120 make soak
#
# Knobs: BUILD (build) the CMake tree, SOAK_HTTP_PORT (18080), SOAK_WS_PORT
# (18081), SOAK_OUT (a new folder under /tmp) for the CSV and the server logs,
# SOAK_ARGS extra soak.py options (--pace, --hold, --workers, --growth-pct...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
secs=${SOAK_SECONDS:-3600}
interval=${SOAK_INTERVAL:-5}
http_port=${SOAK_HTTP_PORT:-18080}
ws_port=${SOAK_WS_PORT:-18081}
out=${SOAK_OUT:-$(mktemp -d /tmp/cymg-soak.XXXXXX)}
mkdir -p "$out"

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log"
fi
cmake --build "$BUILD" --target cymg_tool ws_echo -j2 >"$out/build.log"

www=$out/www
mkdir -p "$www/sub"
head -c 1024 /dev/urandom >"$www/small.txt"
head -c 65536 /dev/urandom >"$www/medium.bin"
head -c 1048576 /dev/urandom >"$www/large.bin"
echo "<p>sub</p>" >"$www/sub/index.html"

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$BUILD/tools/cymg" serve "$www" --listen "http://127.0.0.1:$http_port" >"$out/serve.log" 2>&1 &
http_pid=$!
pids+=("$http_pid")
"$BUILD/examples/ws_echo" "ws://127.0.0.1:$ws_port" >"$out/ws_echo.log" 2>&1 &
ws_pid=$!
pids+=("$ws_pid")

# Both must be listening before the load starts (a bounded wait).
for port in "$http_port" "$ws_port"; do
  for _ in $(seq 50); do
    python3 - "$port" <<'EOF' && break
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
    sleep 0.1
  done
done
kill -0 "$http_pid" && kill -0 "$ws_pid" || { echo "soak: a server did not start (logs in $out)" >&2; exit 1; }

echo "soak: ${secs}s against cymg serve (pid $http_pid, port $http_port) and ws_echo (pid $ws_pid, port $ws_port); output in $out"
rc=0
# shellcheck disable=SC2086 # SOAK_ARGS is a list of options
python3 "$here/soak.py" --http-port "$http_port" --ws-port "$ws_port" --http-pid "$http_pid" \
  --ws-pid "$ws_pid" --seconds "$secs" --interval "$interval" --csv "$out/soak.csv" \
  ${SOAK_ARGS:-} || rc=$?
for p in "$http_pid" "$ws_pid"; do
  if ! kill -0 "$p" 2>/dev/null; then
    st=0
    wait "$p" || st=$?
    echo "soak: server pid $p exited with status $st (logs in $out)"
  fi
done
exit "$rc"
