#!/usr/bin/env bash
# HTTP server: libcymg against nginx-light (1 worker) in the same run, so both
# see the same machine and the same load. wrk on 127.0.0.1 drives them: 50
# keep-alive connections asking for a 5-byte "hello" (hello_cymg.c), then 50
# connections that each carry one request (Connection: close), then a static
# 5-byte file and a 1 MiB static file over 50 keep-alive connections, served by
# `cymg serve DIR` (the tool in $BUILD/tools) and by nginx's root + sendfile from
# the same directory. libcymg runs once per backend of BACKENDS (CYMG_BACKEND);
# `cymg serve --workers 2` is an extra static row. Prints markdown tables and
# the command lines used.
#
# Knobs (environment): BACKENDS ("epoll") the libcymg backends, one row each;
# SERVE2 (1) the `cymg serve --workers 2` rows (on the first backend, not
# pinned: two threads need two CPUs); RUNS (11) runs of SECS (1) seconds per
# configuration, interleaved, median reported; COUNT_SECS (2) for the
# syscall-count session; CONNS (50) wrk connections; QUIET_PCT (10);
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
BACKENDS=${BACKENDS:-epoll}
SERVE2=${SERVE2:-1}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

make_workdir
skip_without wrk http

# ---- build: the library and the cymg tool from the CMake tree, the hello
# server by hand ----
build_library cymg_static cymg_tool
bin="$BUILD/bench/http"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_cymg" "$here/hello_cymg.c"
cymg_tool="$BUILD/tools/cymg"
[ -x "$cymg_tool" ] || { echo "no $cymg_tool after the build" >&2; exit 1; }
pin_cpus

# The static files, readable by nginx's worker when it runs as nobody.
chmod 755 "$work"
mkdir -p "$work/www/static"
printf hello >"$work/www/static/5b.txt"
head -c 1048576 /dev/urandom >"$work/www/static/1m.bin"
chmod -R a+rX "$work/www"
SMALL=/static/5b.txt
STATIC=/static/1m.bin

# start_serve NAME PIN|nopin [ENV=V...] -- ARGS...: `cymg serve ARGS` on the
# server CPU (nopin: on any), which says "... at http://127.0.0.1:N/ ..."; sets
# PID[NAME], PORT[NAME], CMD[NAME].
start_serve() {
  local name=$1 pin=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local cmd=(env "${envs[@]}" "$cymg_tool" serve "$@")
  [ "$pin" = pin ] && cmd=("${srv_pin[@]}" "${cmd[@]}")
  "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  PID[$name]=$!
  CMD[$name]="${cmd[*]}"
  local port='' _
  for _ in $(seq 500); do
    port=$(sed -n 's|.* at https\?://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/$name.out")
    [ -n "$port" ] && break
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$port" ] || { server_failed "$name" "did not start"; return 1; }
  PORT[$name]=$port
}

# ---- the servers: started once, on the server CPU (except `cymg serve
# --workers 2`, whose two threads need two CPUs); those not under test sleep
# in their wait. Per backend B: cymg.B (hello_cymg) and serve.B (cymg serve,
# 1 worker), with CYMG_BACKEND=B. ----
read -ra backends <<<"$BACKENDS"
commands=()
for b in "${backends[@]}"; do
  start_server "cymg.$b" env "CYMG_BACKEND=$b" "$bin/hello_cymg" 0 "$work/www" || exit 1
  start_serve "serve.$b" pin "CYMG_BACKEND=$b" -- "$work/www" --listen http://127.0.0.1:0 \
    --workers 1 --quiet || exit 1
  commands+=("${CMD[cymg.$b]}" "${CMD[serve.$b]}")
done
have_serve2=false
if [ "$SERVE2" = 1 ]; then
  start_serve serve2 nopin "CYMG_BACKEND=${backends[0]}" -- "$work/www" \
    --listen http://127.0.0.1:0 --workers 2 --quiet || exit 1
  commands+=("${CMD[serve2]}")
  have_serve2=true
fi

# nginx: bench/http/nginx.sh (shared with idle.sh).
# shellcheck source=bench/http/nginx.sh
. "$here/nginx.sh"
have_nginx=true
start_nginx || have_nginx=false

# The responses must be what we think they are before anything is timed.
want_big=$(cksum <"$work/www/static/1m.bin")
for s in "${!PORT[@]}"; do
  p=${PORT[$s]}
  if [ "${s%%.*}" != serve ] && [ "$s" != serve2 ]; then
    body=$(curl -fs "http://127.0.0.1:$p/" || true)
    [ "$body" = hello ] || { echo "$s on port $p answered '$body'" >&2; exit 1; }
  fi
  body=$(curl -fs "http://127.0.0.1:$p$SMALL" || true)
  [ "$body" = hello ] || { echo "$s on port $p sent '$body' for $SMALL" >&2; exit 1; }
  sum=$(curl -fs "http://127.0.0.1:$p$STATIC" | cksum || true)
  [ "$sum" = "$want_big" ] || { echo "$s on port $p sent another $STATIC" >&2; exit 1; }
done

# ---- measuring ----

# name|server|mode|path ; mode: ka (keep-alive) or close (Connection: close)
configs=()
add_rows() { # label mode path [serve]: one row per backend, nginx's, and serve2's
  local label=$1 mode=$2 path=$3 kind=${4:-cymg} b
  for b in "${backends[@]}"; do
    if [ "$kind" = serve ]; then
      configs+=("cymg serve ($b), $label|serve.$b|$mode|$path")
    else
      configs+=("libcymg ($b), $label|cymg.$b|$mode|$path")
    fi
  done
  if [ "$kind" = serve ] && $have_serve2; then
    configs+=("cymg serve --workers 2 (${backends[0]}), $label|serve2|$mode|$path")
  fi
  $have_nginx && configs+=("nginx, $label|nginx|$mode|$path")
  return 0
}
add_rows keep-alive ka /
add_rows "connection per request" close /
add_rows "static 5 B, keep-alive" ka "$SMALL" serve
add_rows "static 1 MiB, keep-alive" ka "$STATIC" serve

# The process whose CPU time and system calls count: nginx's worker; for cymg
# serve the whole process (all its threads: /proc/PID/stat sums them).
pid_of() { if [ "$1" = nginx ]; then echo "$nginx_worker"; else echo "${PID[$1]}"; fi; }
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
# Columns: read+recvfrom, write+writev+sendto, sendfile, wait (epoll_wait,
# epoll_pwait, poll, ppoll, select, pselect6, io_uring_enter), epoll_ctl,
# accept4, openat, close, all.
sys_names=(recvfrom read sendto write writev sendfile64 epoll_wait epoll_pwait poll ppoll select
  pselect6 io_uring_enter epoll_ctl accept4 openat close)
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
      w = c["epoll_wait"] + c["epoll_pwait"] + c["poll"] + c["ppoll"] + c["select"] + c["pselect6"] + c["io_uring_enter"]
      printf "%.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f; %.2f\n", (c["recvfrom"] + c["read"]) / n,
        (c["sendto"] + c["write"] + c["writev"]) / n, c["sendfile64"] / n, w / n,
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
# table MODE PATH: the rows of one workload; the 1 MiB rows show MB/s (10^6
# bytes of body).
table() {
  local mode=$1 want=$2 unit="req/s" scale=1
  if [ "$want" = "$STATIC" ]; then unit="MB/s" scale=1.048576; fi
  echo "| configuration | $unit (median) | quiet runs: median (n) | best | vs nginx: median, quiet, best | vs nginx: requests per server CPU-second | p99 latency | server CPU µs/req | CPU busy: server, wrk | syscalls/req: recv, send, sendfile, wait, epoll_ctl, accept4, openat, close; all |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for i in "${!configs[@]}"; do
    IFS='|' read -r name s m path <<<"${configs[$i]}"
    [ "$m" = "$mode" ] && [ "$path" = "$want" ] || continue
    read -r med best qmed nq p99 cpu errs spct wpct <<<"$(stats "$i")"
    sc() { awk -v v="$1" -v k="$scale" 'BEGIN { printf (k == 1 ? "%d" : "%.0f"), v * k }'; }
    qcell=$(quiet_cell "$(sc "$qmed")" "$nq")
    rcell="" ecell=""
    if [ "$s" != nginx ] && $have_nginx; then
      local k="nginx.$m.$path"
      rcell="$(ratio "$med" "${MED[$k]}"), $(ratio "$qmed" "${QMED[$k]}"), $(ratio "$best" "${BEST[$k]}")"
      ecell=$(ratio "${CPU[$k]}" "$cpu")
    fi
    [ "$errs" -gt 0 ] && name="$name ($errs errors)"
    echo "| $name | $(sc "$med") | $qcell | $(sc "$best") | $rcell | $ecell | $(latency "$p99") | $(micros "$cpu") | $spct%, $wpct% | $(cat "$work/sys.$i") |"
  done
}
# goal SERVER MODE PATH MIN: "ratio (met)" of requests per server CPU-second.
goal() {
  local k="nginx.$2.$3" r
  r=$(ratio "${CPU[$k]:-0}" "${CPU[$1.$2.$3]:-0}")
  if [ "$r" = n/a ]; then echo n/a; else echo "$r ($(met "$r" "$4"))"; fi
}

echo "### http: libcymg vs nginx-light, wrk -t1 -c$CONNS, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved; servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU$($have_serve2 && echo ' (`cymg serve --workers 2` on any CPU)'). Backends: ${backends[*]}."
echo "Load average before: $load_before, after: $load_after. Build: $build_type. nginx: $($have_nginx && "$NGINX" -v 2>&1 | sed 's/.*: //' || echo 'not installed')."
echo
if $have_nginx; then
  echo "Goals (issue 15), requests per server CPU-second against nginx (1 worker), medians:"
  echo
  echo "| backend | keep-alive hello (>= 1.5) | connection per request (>= 1.2) | static 5 B (>= 1.2) | static 1 MiB (>= 1.2) |"
  echo "|---|---:|---:|---:|---:|"
  for b in "${backends[@]}"; do
    echo "| $b | $(goal "cymg.$b" ka / 1.5) | $(goal "cymg.$b" close / 1.2) | $(goal "serve.$b" ka "$SMALL" 1.2) | $(goal "serve.$b" ka "$STATIC" 1.2) |"
  done
  if $have_serve2; then
    echo "| ${backends[0]}, cymg serve --workers 2 | | | $(goal serve2 ka "$SMALL" 1.2) | $(goal serve2 ka "$STATIC" 1.2) |"
  fi
  echo
fi
echo "\"hello\": a 5-byte text/plain body (hello_cymg; nginx: return 200), keep-alive:"
echo
table ka /
echo
echo "Connection per request (wrk -H 'Connection: close'), the same body:"
echo
table close /
echo
echo "Static 5-byte file, $CONNS keep-alive connections (cymg serve DIR --quiet; nginx: root, sendfile on):"
echo
table ka "$SMALL"
echo
echo "Static 1 MiB file, $CONNS keep-alive connections:"
echo
table ka "$STATIC"
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
echo "sendto, wait = epoll_wait + epoll_pwait + poll + ppoll + select + pselect6 +"
echo "io_uring_enter; \"all\" counts every system call."
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
