#!/usr/bin/env bash
# One manager per core against nginx with as many workers, in the same run:
# examples/http_multicore --workers W and nginx worker_processes W, each driven
# by wrk on 127.0.0.1 (keep-alive, CONNS connections, 2 threads), RUNS
# interleaved runs of SECS seconds. Reports requests/s and requests per server
# CPU-second (utime+stime of every server thread or worker, from /proc), and
# the load average before and after.
#   bench/http/multicore.sh [BUILD_DIR]     knobs: W (2) RUNS (5) SECS (2) CONNS (50)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
W=${W:-2} RUNS=${RUNS:-5} SECS=${SECS:-2} CONNS=${CONNS:-50}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat"))); done; echo "$t"; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cport=$(free_port)
"$build"/examples/http_multicore "http://127.0.0.1:$cport" --workers "$W" >"$work/mc.out" 2>"$work/mc.err" & cpid=$!; pids+=("$cpid")
nport=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGX
worker_processes $W;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nport reuseport; default_type text/plain;
           location / { return 200 "hello from nginx\n"; } }
}
NGX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & npid=$!; pids+=("$npid")
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$cport/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$nport/" >/dev/null 2>&1 && break
  sleep 0.05
done
mapfile -t nworkers < <(pgrep -P "$npid")
[ "${#nworkers[@]}" -eq "$W" ] || { echo "nginx has ${#nworkers[@]} workers, not $W" >&2; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # name port pids...
  local name=$1 port=$2; shift 2
  local t0; t0=$(ticks "$@")
  wrk -t2 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/" >"$work/wrk.out"
  local t1; t1=$(ticks "$@")
  local req; req=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
  awk -v n="$name" -v r="$req" -v s="$SECS" -v c=$((t1 - t0)) -v hz="$hz" \
    'BEGIN { printf "%s %d %.0f %.0f\n", n, r, r / s, (c ? r / (c / hz) : 0) }'
}
for _ in $(seq "$RUNS"); do
  run cymg "$cport" "$cpid"
  run nginx "$nport" "${nworkers[@]}"
done | tee "$work/runs"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Medians of req/s and of req per server CPU-second.
for n in cymg nginx; do
  awk -v n="$n" '$1 == n { print $3 }' "$work/runs" | sort -n | awk '{ a[NR] = $1 } END { printf "%s median req/s %d", n = "'$n'", a[int((NR + 1) / 2)] }'
  awk -v n="$n" '$1 == n { print $4 }' "$work/runs" | sort -n | awk '{ a[NR] = $1 } END { printf ", median req per server CPU-s %d\n", a[int((NR + 1) / 2)] }'
done
