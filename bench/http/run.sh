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
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
# Many short runs rather than a few long ones: load on a shared machine comes in
# bursts, and short runs are more likely to fall between them.
RUNS=${RUNS:-11}
SECS=${SECS:-1}
COUNT_SECS=${COUNT_SECS:-2}
CONNS=${CONNS:-50}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

make_workdir
skip_without wrk http

# ---- build: the library from the CMake tree, the server by hand ----
build_library cymg_static
bin="$BUILD/bench/http"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_cymg" "$here/hello_cymg.c"
pin_cpus

# The static file, readable by nginx's worker when it runs as nobody.
chmod 755 "$work"
mkdir -p "$work/www/static"
head -c 1048576 /dev/urandom >"$work/www/static/1m.bin"
chmod -R a+rX "$work/www"
STATIC=/static/1m.bin

# ---- the servers: started once, both pinned to the server CPU; the one not
# under test sleeps in epoll_wait. ----
start_server cymg "$bin/hello_cymg" 0 "$work/www" || exit 1
commands=("${CMD[cymg]}")

# nginx: bench/http/nginx.sh (shared with idle.sh).
# shellcheck source=bench/http/nginx.sh
. "$here/nginx.sh"
have_nginx=true
start_nginx || have_nginx=false

# The responses must be what we think they are before anything is timed.
want_sum=$(cksum <"$work/www/static/1m.bin")
for p in "${PORT[@]}"; do
  body=$(curl -fs "http://127.0.0.1:$p/" || true)
  [ "$body" = hello ] || { echo "server on port $p answered '$body'" >&2; exit 1; }
  sum=$(curl -fs "http://127.0.0.1:$p$STATIC" | cksum || true)
  [ "$sum" = "$want_sum" ] || { echo "server on port $p sent another $STATIC" >&2; exit 1; }
done

# ---- measuring ----

# name|server|mode|path ; mode: ka (keep-alive) or close (Connection: close)
configs=("libcymg, keep-alive|cymg|ka|/")
$have_nginx && configs+=("nginx, keep-alive|nginx|ka|/")
configs+=("libcymg, connection per request|cymg|close|/")
$have_nginx && configs+=("nginx, connection per request|nginx|close|/")
configs+=("libcymg, static 1 MiB, keep-alive|cymg|ka|$STATIC")
$have_nginx && configs+=("nginx, static 1 MiB, keep-alive|nginx|ka|$STATIC")

# The process whose CPU time and system calls count: nginx's worker.
pid_of() { if [ "$1" = cymg ]; then echo "${PID[cymg]}"; else echo "$nginx_worker"; fi; }
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
  local wcmd=("${cli_pin[@]}" wrk "${args[@]}" "http://127.0.0.1:${PORT[$server]}$path")
  commands+=("$(printf '%q ' "${wcmd[@]}")")
  timeout $((${5:-$SECS} + 30)) "${wcmd[@]}" >"$out" 2>&1
}

# One timed session; appends "rate p99_us cpu_ns_per_req others_pct errors
# server_pct wrk_pct" to $work/res.$i (CPU shares in % of one CPU).
measure() {
  local i=$1 server=$2 mode=$3 path=$4
  local pid
  pid=$(pid_of "$server")
  cpu_window_start "$pid"
  run_wrk "$server" "$mode" "$path" "$work/wrk.out" || true
  cpu_window_end "$pid"
  wrk_result "$work/wrk.out" >>"$work/res.$i"
  cp "$work/wrk.out" "$work/wrk.$i.last"
}

load_before=$(load_average)

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
choose_counter
# Columns: read+recvfrom, write+writev+sendto, sendfile, epoll_wait, epoll_ctl,
# accept4, openat, close, all.
sys_names=(recvfrom read sendto write writev sendfile64 epoll_wait epoll_ctl accept4 openat close)
count_syscalls() { # i server mode path
  local i=$1 server=$2 mode=$3 path=$4 pid out="$work/count.$1"
  pid=$(pid_of "$server")
  counter_attach "$pid" "$out" "${sys_names[@]}" || { echo "n/a" >"$work/sys.$i"; return; }
  run_wrk "$server" "$mode" "$path" "$work/wrk.count" "$COUNT_SECS" || true
  counter_detach
  local reqs counts
  reqs=$(wrk_requests "$work/wrk.count")
  counts=$(counter_counts "$out")
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

load_after=$(load_average)

# stats I: "median_rate best quiet_median quiet_n p99 cpu_ns errors server_pct
# wrk_pct", with p99, CPU per request and CPU shares as medians over the quiet
# runs (all runs if none was quiet).
stats() { quiet_stats 4 2 3 +5 6 7 <"$work/res.$1"; }

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
    qcell=$(quiet_cell "$(sc "$qmed")" "$nq")
    rcell="" ecell=""
    if [ "$s" = cymg ] && $have_nginx; then
      local k="nginx.$m.$path"
      rcell="$(ratio "$med" "${MED[$k]}"), $(ratio "$qmed" "${QMED[$k]}"), $(ratio "$best" "${BEST[$k]}")"
      ecell=$(ratio "${CPU[$k]}" "$cpu")
    fi
    [ "$errs" -gt 0 ] && name="$name ($errs errors)"
    echo "| $name | $(sc "$med") | $qcell | $(sc "$best") | $rcell | $ecell | $(latency "$p99") | $(micros "$cpu") | $spct%, $wpct% | $(cat "$work/sys.$i") |"
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
  echo "- $name: $(each_run 1 4 <"$work/res.$i")"
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
printf '%s\n' "${cc_cmds[@]}"
printf '%s\n' "${commands[@]}" | sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | unique
echo '```'
echo
echo "nginx.conf (\$TMP is the script's temporary directory):"
echo
echo '```nginx'
if $have_nginx; then sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|' "$work/nginx/nginx.conf"; fi
echo '```'
