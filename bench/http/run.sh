#!/usr/bin/env bash
# HTTP server: libcymg (hello_cymg.c) against nginx-light in the same run, so both
# see the same machine and the same load. wrk on 127.0.0.1 drives both: 50
# keep-alive connections, then 50 connections that each carry one request
# (Connection: close), then a 1 MiB static file over 50 keep-alive connections
# (cymg_http_serve_dir against nginx's root + sendfile). Prints markdown tables
# and the command lines used.
#
# Knobs (environment): RUNS (11) runs of SECS (1) seconds per configuration,
# interleaved, median reported; COUNT_SECS (2) for the syscall-count session;
# CONNS (50) wrk connections; QUIET_PCT (10);
# SERVER_CPU (0) and CLIENT_CPU (1) for taskset; BUILD (build) the CMake tree;
# COUNT_WITH (perf, strace or none; default: perf if it can, else strace);
# NGINX (nginx binary; the nginx rows are skipped when it is missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
# Many short runs rather than a few long ones: load on a shared machine comes in
# bursts, and short runs are more likely to fall between them.
RUNS=${RUNS:-11}
SECS=${SECS:-1}
COUNT_SECS=${COUNT_SECS:-2}
CONNS=${CONNS:-50}
QUIET_PCT=${QUIET_PCT:-10}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
HZ=$(getconf CLK_TCK)

work=$(mktemp -d)
cymg_pid= nginx_pid= perf_pid=
cleanup() {
  # Only the processes this script started, by their ids.
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; fi
  if [ -n "$cymg_pid" ]; then kill "$cymg_pid" 2>/dev/null || true; fi
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "### http: skipped (wrk is not installed: scripts/deps.sh bench)"
  exit 0
fi

# ---- build: the library from the CMake tree, the server by hand ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" ||
    { cat "$work/cmake.log" >&2; exit 1; }
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
case "$build_type" in
  Release | RelWithDebInfo) ;;
  *) echo "warning: $BUILD is a '${build_type:-unset}' build; figures will not be representative" >&2 ;;
esac
cmake --build "$BUILD" --target cymg_static -j2 >"$work/build.log" ||
  { cat "$work/build.log" >&2; exit 1; }
bin="$BUILD/bench/http"
mkdir -p "$bin"
CC=${CC:-cc}
CFLAGS=(-O2 -std=c11 -Wall -Wextra)
cc_cmd=("$CC" "${CFLAGS[@]}" -I"$root/include" -o "$bin/hello_cymg" "$here/hello_cymg.c"
  "$BUILD/libcymg.a" -lssl -lcrypto -lz -lpthread)
"${cc_cmd[@]}"

srv_pin=() cli_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv_pin=(taskset -c "$SERVER_CPU")
  cli_pin=(taskset -c "$CLIENT_CPU")
fi

# The static file, readable by nginx's worker when it runs as nobody.
chmod 755 "$work"
mkdir -p "$work/www/static"
head -c 1048576 /dev/urandom >"$work/www/static/1m.bin"
chmod -R a+rX "$work/www"
STATIC=/static/1m.bin

# ---- the servers: started once, both pinned to the server CPU; the one not
# under test sleeps in epoll_wait. ----
commands=()
scmd=("${srv_pin[@]}" "$bin/hello_cymg" 0 "$work/www")
"${scmd[@]}" >"$work/cymg.out" 2>"$work/cymg.err" &
cymg_pid=$!
commands+=("${scmd[*]}")
cymg_port=
for _ in $(seq 250); do
  cymg_port=$(awk '$1=="port" {print $2}' "$work/cymg.out")
  [ -n "$cymg_port" ] && break
  sleep 0.02
done
[ -n "$cymg_port" ] || { echo "hello_cymg did not start" >&2; cat "$work/cymg.err" >&2; exit 1; }

# nginx: 1 worker, everything it writes under $work, so it runs as root or not.
# As root the worker drops to nobody, hence a world-readable prefix.
nginx_port= nginx_worker= ngx_cmd=()
start_nginx() {
  [ -x "$NGINX" ] || return 1
  mkdir -p "$work/nginx"
  local port
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ":$port\$" && continue
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  sendfile on;
  server {
    listen 127.0.0.1:$port;
    default_type text/plain;
    location / { return 200 "hello"; }
    location /static/ { root $work/www; }
  }
}
EOF
    ngx_cmd=("${srv_pin[@]}" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log")
    "${ngx_cmd[@]}" >"$work/nginx.out" 2>&1 &
    nginx_pid=$!
    for _ in $(seq 100); do
      nginx_worker=$(pgrep -P "$nginx_pid" | head -1 || true)
      [ -n "$nginx_worker" ] && curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.05
    done
    if [ -n "$nginx_worker" ] && kill -0 "$nginx_pid" 2>/dev/null; then
      nginx_port=$port
      commands+=("${ngx_cmd[*]}")
      return 0
    fi
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=
  done
  cat "$work/nginx.out" "$work/nginx/error.log" >&2 2>/dev/null || true
  return 1
}
have_nginx=true
start_nginx || have_nginx=false

# The responses must be what we think they are before anything is timed.
want_sum=$(cksum <"$work/www/static/1m.bin")
for p in "$cymg_port" ${nginx_port:+"$nginx_port"}; do
  body=$(curl -fs "http://127.0.0.1:$p/" || true)
  [ "$body" = hello ] || { echo "server on port $p answered '$body'" >&2; exit 1; }
  sum=$(curl -fs "http://127.0.0.1:$p$STATIC" | cksum || true)
  [ "$sum" = "$want_sum" ] || { echo "server on port $p sent another $STATIC" >&2; exit 1; }
done

# ---- measuring ----

# utime + stime of one process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Busy time of the whole machine in ticks (user, nice, system, irq, softirq, steal).
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU ticks of this shell's reaped children (wrk runs as one): `times >FILE` must
# run in this shell, not in a $(...) subshell, whose children have used nothing;
# this reads that file.
child_ticks() {
  awk -v hz="$HZ" 'NR == 2 { t = 0; for (f = 1; f <= 2; f++) { split($f, a, /[ms]/);
    t += a[1] * 60 + a[2] } printf "%d\n", t * hz + 0.5 }' "$1"
}

# Latency "728.00us" / "2.90ms" / "1.02s" in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /us$/) n *= 1;
  else if (v ~ /s$/) n *= 1000000; printf "%d\n", n }'; }

# name|server|mode|path ; mode: ka (keep-alive) or close (Connection: close)
configs=("libcymg, keep-alive|cymg|ka|/")
$have_nginx && configs+=("nginx, keep-alive|nginx|ka|/")
configs+=("libcymg, connection per request|cymg|close|/")
$have_nginx && configs+=("nginx, connection per request|nginx|close|/")
configs+=("libcymg, static 1 MiB, keep-alive|cymg|ka|$STATIC")
$have_nginx && configs+=("nginx, static 1 MiB, keep-alive|nginx|ka|$STATIC")

port_of() { if [ "$1" = cymg ]; then echo "$cymg_port"; else echo "$nginx_port"; fi; }
pid_of() { if [ "$1" = cymg ]; then echo "$cymg_pid"; else echo "$nginx_worker"; fi; }
wrk_args() { # mode [seconds]
  local a=(-t1 -c"$CONNS" -d"${2:-$SECS}s" --latency)
  [ "$1" = close ] && a+=(-H 'Connection: close')
  printf '%s\n' "${a[@]}"
}

# run_wrk SERVER MODE PATH OUT [SECONDS]: one wrk session against SERVER.
run_wrk() {
  local server=$1 mode=$2 path=$3 out=$4
  local args
  mapfile -t args < <(wrk_args "$mode" "${5:-$SECS}")
  local wcmd=("${cli_pin[@]}" wrk "${args[@]}" "http://127.0.0.1:$(port_of "$server")$path")
  commands+=("$(printf '%q ' "${wcmd[@]}")")
  timeout $((${5:-$SECS} + 30)) "${wcmd[@]}" >"$out" 2>&1
}

# One timed session; appends "rate p99_us cpu_ns_per_req others_pct errors
# server_pct wrk_pct" to $work/res.$i (CPU shares in % of one CPU).
measure() {
  local i=$1 server=$2 mode=$3 path=$4
  local pid
  pid=$(pid_of "$server")
  local s0 b0 w0 s1 b1 w1
  s0=$(cpu_ticks "$pid")
  b0=$(busy_ticks)
  times >"$work/times.0"
  local t0 t1
  t0=$(date +%s%N)
  run_wrk "$server" "$mode" "$path" "$work/wrk.out" || true
  t1=$(date +%s%N)
  times >"$work/times.1"
  b1=$(busy_ticks)
  s1=$(cpu_ticks "$pid")
  w0=$(child_ticks "$work/times.0")
  w1=$(child_ticks "$work/times.1")
  local rate reqs p99 errs
  rate=$(awk '/^Requests\/sec:/ { printf "%d\n", $2 }' "$work/wrk.out")
  reqs=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
  p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")")
  # Errors: non-2xx answers and socket errors (connect, read, write, timeout).
  errs=$(awk '/Non-2xx/ { e += $NF } /Socket errors/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 } END { print e + 0 }' "$work/wrk.out")
  awk -v rate="${rate:-0}" -v reqs="${reqs:-0}" -v p99="$p99" -v errs="$errs" -v hz="$HZ" \
    -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v secs="$(((t1 - t0) / 1000000))e-3" 'BEGIN {
      o = (b - s - w) * 100 / (secs * hz); if (o < 0) o = 0
      printf "%d %d %d %d %d %d %d\n", rate, p99, reqs ? s * 1e9 / hz / reqs : 0, o, errs,
        s * 100 / (secs * hz), w * 100 / (secs * hz) }' >>"$work/res.$i"
  cp "$work/wrk.out" "$work/wrk.$i.last"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Runs are interleaved (A B C D A B C D ...) so a burst of load from elsewhere
# lands on every configuration instead of on one.
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r _ s m path <<<"${configs[$i]}"
    measure "$i" "$s" "$m" "$path"
  done
done

# ---- syscalls per request: one more session per configuration with the server
# process under a counter, attached by pid for the length of the session ----
count_with=${COUNT_WITH:-}
if [ -n "$count_with" ]; then
  :
elif perf stat -e syscalls:sys_enter_recvfrom -o /dev/null true >/dev/null 2>&1; then
  count_with=perf
elif command -v strace >/dev/null; then
  count_with=strace
else
  count_with=none
fi
# Columns: read+recvfrom, write+writev+sendto, sendfile, epoll_wait, epoll_ctl,
# accept4, openat, close, all.
sys_names=(recvfrom read sendto write writev sendfile64 epoll_wait epoll_ctl accept4 openat close)
count_syscalls() { # i server mode path
  local i=$1 server=$2 mode=$3 path=$4 pid out="$work/count.$1"
  pid=$(pid_of "$server")
  case "$count_with" in
    perf)
      local ev=()
      for n in "${sys_names[@]}"; do ev+=("syscalls:sys_enter_$n"); done
      ev+=(raw_syscalls:sys_enter)
      perf stat -x, -o "$out" -e "$(IFS=,; echo "${ev[*]}")" -p "$pid" &
      ;;
    strace) strace -c -f -o "$out" -p "$pid" 2>/dev/null & ;;
    *) echo "n/a" >"$work/sys.$i"; return ;;
  esac
  perf_pid=$!
  sleep 0.5 # attached before the first request
  run_wrk "$server" "$mode" "$path" "$work/wrk.count" "$COUNT_SECS" || true
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
  local reqs
  reqs=$(awk '/requests in/ { print $1 }' "$work/wrk.count")
  local counts
  case "$count_with" in
    perf) counts=$(awk -F, '{ sub(/^(raw_)?syscalls:sys_enter_?/, "", $3); if ($3 == "") $3 = "total"; print $3, $1 }' "$out") ;;
    strace) counts=$(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 }' "$out") ;;
  esac
  awk -v n="${reqs:-0}" '{ c[$1] = $2 + 0 } END {
      if (!n) { print "n/a"; exit }
      printf "%.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f; %.2f\n", (c["recvfrom"] + c["read"]) / n,
        (c["sendto"] + c["write"] + c["writev"]) / n, c["sendfile64"] / n, c["epoll_wait"] / n,
        c["epoll_ctl"] / n, c["accept4"] / n, c["openat"] / n, c["close"] / n, c["total"] / n }' \
    <<<"$counts" >"$work/sys.$i"
}
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s m path <<<"${configs[$i]}"
  count_syscalls "$i" "$s" "$m" "$path"
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# stats I: "median_rate best quiet_median quiet_n p99 cpu_ns errors server_pct
# wrk_pct", with p99, CPU per request and CPU shares as medians over the quiet
# runs (all runs if none was quiet).
stats() {
  awk -v q="$QUIET_PCT" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : int((a[n / 2] + a[n / 2 + 1]) / 2))
    }
    { all[++n] = $1; if ($1 > best) best = $1; p99a[n] = $2; cpua[n] = $3; err += $5
      sa[n] = $6; wa[n] = $7
      if ($4 <= q) { quiet[++nq] = $1; p99q[nq] = $2; cpuq[nq] = $3; sq[nq] = $6; wq[nq] = $7 } }
    END { printf "%d %d %d %d %d %d %d %d %d\n", med(all, n), best, med(quiet, nq), nq,
                 nq ? med(p99q, nq) : med(p99a, n), nq ? med(cpuq, nq) : med(cpua, n), err,
                 nq ? med(sq, nq) : med(sa, n), nq ? med(wq, nq) : med(wa, n) }' "$work/res.$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a && b) printf "%.2f", a / b; else printf "n/a" }'; }

declare -A MED QMED BEST CPU
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s m path <<<"${configs[$i]}"
  read -r med best qmed _ _ cpu _ <<<"$(stats "$i")"
  MED[$s.$m.$path]=$med QMED[$s.$m.$path]=$qmed BEST[$s.$m.$path]=$best CPU[$s.$m.$path]=$cpu
done
# table KIND: the rows of one table; static rows show MB/s (10^6 bytes of body).
table() {
  local kind=$1 unit="req/s" scale=1
  if [ "$kind" = static ]; then unit="MB/s" scale=1.048576; fi
  echo "| configuration | $unit (median) | quiet runs: median (n) | best | cymg/nginx: median, quiet, best | cymg/nginx: requests per server CPU-second | p99 latency | server CPU µs/req | CPU busy: server, wrk | syscalls/req: recv, send, sendfile, epoll_wait, epoll_ctl, accept4, openat, close; all |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for i in "${!configs[@]}"; do
    IFS='|' read -r name s m path <<<"${configs[$i]}"
    if [ "$kind" = static ] && [ "$path" != "$STATIC" ]; then continue; fi
    if [ "$kind" != static ] && [ "$path" = "$STATIC" ]; then continue; fi
    read -r med best qmed nq p99 cpu errs spct wpct <<<"$(stats "$i")"
    sc() { awk -v v="$1" -v k="$scale" 'BEGIN { printf (k == 1 ? "%d" : "%.0f"), v * k }'; }
    qcell="n/a (0)"
    [ "$nq" -gt 0 ] && qcell="$(sc "$qmed") ($nq)"
    rcell="" ecell=""
    if [ "$s" = cymg ] && $have_nginx; then
      local k="nginx.$m.$path"
      rcell="$(ratio "$med" "${MED[$k]}"), $(ratio "$qmed" "${QMED[$k]}"), $(ratio "$best" "${BEST[$k]}")"
      ecell=$(ratio "${CPU[$k]}" "$cpu")
    fi
    [ "$errs" -gt 0 ] && name="$name ($errs errors)"
    p99c=$(awk -v u="$p99" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d µs", u }')
    cpuc=$(awk -v c="$cpu" 'BEGIN { printf "%.2f", c / 1000 }')
    echo "| $name | $(sc "$med") | $qcell | $(sc "$best") | $rcell | $ecell | $p99c | $cpuc | $spct%, $wpct% | $(cat "$work/sys.$i") |"
  done
}

echo "### http: libcymg vs nginx-light, wrk -t1 -c$CONNS, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved; servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type. nginx: $($have_nginx && "$NGINX" -v 2>&1 | sed 's/.*: //' || echo 'not installed')."
echo
echo "\"hello\": a 5-byte text/plain body."
echo
table hello
echo
echo "Static: one 1 MiB file, $CONNS keep-alive connections (libcymg: cymg_http_serve_dir; nginx: root, sendfile on)."
echo
table static
echo
echo "Each run, req/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ _ _ <<<"${configs[$i]}"
  echo "- $name: $(awk '{ printf "%s%s (%s%%)", (NR > 1 ? ", " : ""), $1, $4 }' "$work/res.$i")"
done
echo
echo "A run is quiet when other programs used at most ${QUIET_PCT}% of a CPU during it"
echo "(machine busy time from /proc/stat minus the server's and wrk's own time). p99"
echo "(wrk --latency) and server CPU µs/req (user + system from /proc/PID/stat; for"
echo "nginx the worker) are medians over the quiet runs, or all runs if none was quiet;"
echo "so is CPU busy, the share of one CPU the server and wrk used: a side near 100%"
echo "is the bottleneck. When wrk is, the throughput ratio says little about the"
echo "servers, and requests per server CPU-second (the inverse ratio of CPU µs/req)"
echo "is the comparison to read. Syscalls: the server process under $count_with"
echo "(attached by pid) for one more ${COUNT_SECS}s wrk session per configuration, divided"
echo "by the requests wrk completed; recv = read + recvfrom, send = write + writev +"
echo "sendto; \"all\" counts every system call."
echo
echo "Command lines (ports chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmd[*]}"
printf '%s\n' "${commands[@]}" | sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | awk '!seen[$0]++'
echo '```'
echo
echo "nginx.conf (\$TMP is the script's temporary directory):"
echo
echo '```nginx'
if $have_nginx; then sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|' "$work/nginx/nginx.conf"; fi
echo '```'
