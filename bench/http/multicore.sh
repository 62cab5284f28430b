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
# shellcheck source=bench/lib.sh
source bench/lib.sh
make_workdir
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT

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
echo "load average before: $(load_average)"
for _ in $(seq "$RUNS"); do
  wrk_round cymg "$cport" "$cpid"
  wrk_round nginx "$nport" "${nworkers[@]}"
done | tee "$work/runs"
echo "load average after: $(load_average)"
round_medians "$work/runs" cymg nginx
