#!/usr/bin/env bash
# WebSocket echo: libcymg (echo_cymg.c) against Node's `ws` package (echo_node.js,
# the version pinned in tests/node), one server process each, in the same run so
# both see the same machine and the same load. One load client for both
# (load_cymg.c, on libcymg): 50 connections, 64-byte binary messages, each
# connection keeping one message in flight, then a fixed window of 8 per
# connection. Prints markdown tables and the command lines used.
#
# Knobs (environment): RUNS (9) runs of SECS (2) seconds per server,
# interleaved, median reported; CONNS (50); WINDOWS ("1 8") messages in flight
# per connection, one configuration each; SIZE (64) bytes per message; QUIET_PCT (10); COUNT_SECS (2) for
# the syscall-count session; SERVER_CPU (0) and CLIENT_CPU (1) for taskset;
# BUILD (build) the CMake tree; COUNT_WITH (perf, strace or none); NODE (node).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
RUNS=${RUNS:-9}
SECS=${SECS:-2}
CONNS=${CONNS:-50}
WINDOWS=${WINDOWS:-1 8}
SIZE=${SIZE:-64}
COUNT_SECS=${COUNT_SECS:-2}
QUIET_PCT=${QUIET_PCT:-10}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NODE=${NODE:-$(command -v node || true)}
HZ=$(getconf CLK_TCK)

work=$(mktemp -d)
declare -A PID PORT CMD
perf_pid=
cleanup() {
  # Only the processes this script started, by their ids.
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; fi
  for s in "${!PID[@]}"; do kill "${PID[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- build: the library from the CMake tree, the server and the client by hand ----
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
bin="$BUILD/bench/ws"
mkdir -p "$bin"
CC=${CC:-cc}
cc_cmds=()
for prog in echo_cymg load_cymg; do
  cmd=("$CC" -O2 -std=c11 -Wall -Wextra -I"$root/include" -o "$bin/$prog" "$here/$prog.c"
    "$BUILD/libcymg.a" -lssl -lcrypto -lz -lpthread)
  "${cmd[@]}"
  cc_cmds+=("${cmd[*]}")
done

srv_pin=() cli_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv_pin=(taskset -c "$SERVER_CPU")
  cli_pin=(taskset -c "$CLIENT_CPU")
fi

# start NAME CMD...: a server on the server CPU that prints "port N".
start() {
  local name=$1
  shift
  local cmd=("${srv_pin[@]}" "$@")
  "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  PID[$name]=$!
  CMD[$name]="${cmd[*]}"
  local port=
  for _ in $(seq 200); do
    port=$(awk '$1 == "port" { print $2 }' "$work/$name.out")
    [ -n "$port" ] && break
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "$name did not start:" >&2
    cat "$work/$name.err" >&2
    unset "PID[$name]"
    return 1
  fi
  PORT[$name]=$port
}

servers=()
start cymg "$bin/echo_cymg" 0 || exit 1
servers+=(cymg)
node_note=
if [ -z "$NODE" ]; then
  node_note="node is not installed (Debian: nodejs): the Node row is left out."
elif [ ! -f "$root/tests/node/node_modules/ws/package.json" ]; then
  node_note="the ws package is not installed (scripts/deps-node.sh): the Node row is left out."
else
  start node "$NODE" "$here/echo_node.js" 0 && servers+=(node)
fi
declare -A LABEL=([cymg]="libcymg (echo_cymg.c)" [node]="Node ws (echo_node.js)")

# ---- measuring ----
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
child_ticks() {
  awk -v hz="$HZ" 'NR == 2 { t = 0; for (f = 1; f <= 2; f++) { split($f, a, /[ms]/);
    t += a[1] * 60 + a[2] } printf "%d\n", t * hz + 0.5 }' "$1"
}

commands=()
run_client() { # server window out seconds
  local ccmd=("${cli_pin[@]}" "$bin/load_cymg" "ws://127.0.0.1:${PORT[$1]}/ws" "$CONNS" "$2" "$4" "$SIZE")
  commands+=("${ccmd[*]}")
  timeout $(($4 + 30)) "${ccmd[@]}" >"$3" 2>&1
}

# One timed session; appends "msgs_per_s server_ns_per_msg others_pct
# server_pct client_pct failed" to $work/res.$server.$window. Server CPU is the
# process's whole time over the session (handshakes and closes included: 50 of
# each against some 10^5 messages); client CPU its own over the timed part.
measure() {
  local server=$1 window=$2 pid=${PID[$1]}
  local s0 b0 w0 s1 b1 w1 t0 t1 failed=0
  s0=$(cpu_ticks "$pid")
  b0=$(busy_ticks)
  times >"$work/times.0"
  t0=$(date +%s%N)
  run_client "$server" "$window" "$work/client.out" "$SECS" || failed=1
  t1=$(date +%s%N)
  times >"$work/times.1"
  b1=$(busy_ticks)
  s1=$(cpu_ticks "$pid")
  w0=$(child_ticks "$work/times.0")
  w1=$(child_ticks "$work/times.1")
  [ "$failed" = 1 ] && cat "$work/client.out" >&2
  awk -v hz="$HZ" -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v failed="$failed" \
    -v secs="$(((t1 - t0) / 1000000))e-3" '
    { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] } }
    END {
      o = (b - s - w) * 100 / (secs * hz); if (o < 0) o = 0
      printf "%d %d %d %d %d %d\n", v["msgs_per_s"], v["msgs"] ? s * 1e9 / hz / v["msgs"] : 0, o,
        s * 100 / (secs * hz), v["seconds"] ? v["cpu_us"] / 1e4 / v["seconds"] : 0, failed }' \
    "$work/client.out" >>"$work/res.$server.$window"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for w in $WINDOWS; do for s in "${servers[@]}"; do measure "$s" "$w"; done; done
done

# ---- syscalls per message: one more session per server with the server
# process under a counter (perf stat -p counts all its threads) ----
count_with=${COUNT_WITH:-}
if [ -z "$count_with" ]; then
  if perf stat -e syscalls:sys_enter_recvfrom -o /dev/null true >/dev/null 2>&1; then count_with=perf
  elif command -v strace >/dev/null; then count_with=strace
  else count_with=none; fi
fi
declare -A SYS
for w in $WINDOWS; do for s in "${servers[@]}"; do
  k=$s.$w
  SYS[$k]="n/a | | | |"
  [ "$count_with" = none ] && continue
  out="$work/count.$k"
  case "$count_with" in
    perf)
      ev=syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv
      ev+=,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev
      ev+=,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl
      perf stat -x, -o "$out" -e "$ev,raw_syscalls:sys_enter" -p "${PID[$s]}" &
      ;;
    strace) strace -c -f -o "$out" -p "${PID[$s]}" 2>/dev/null & ;;
  esac
  perf_pid=$!
  sleep 0.5
  run_client "$s" "$w" "$work/client.count" "$COUNT_SECS" || true
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
  msgs=$(awk '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); if (kv[1] == "msgs") print kv[2] } }' "$work/client.count")
  case "$count_with" in
    perf) counts=$(awk -F, '{ sub(/^(raw_)?syscalls:sys_enter_?/, "", $3); if ($3 == "") $3 = "total"; print $3, $1 }' "$out") ;;
    strace) counts=$(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 } $NF == "total" { print "total", $3 }' "$out") ;;
  esac
  SYS[$k]=$(awk -v n="${msgs:-0}" '{ c[$1] = $2 + 0 } END { if (!n) { print "n/a | | | |"; exit }
    printf "%.2f | %.2f | %.2f | %.2f | %.2f\n", (c["recvfrom"] + c["read"] + c["readv"]) / n,
      (c["sendto"] + c["write"] + c["writev"]) / n, (c["epoll_wait"] + c["epoll_pwait"]) / n,
      c["epoll_ctl"] / n, c["total"] / n }' <<<"$counts")
done; done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# stats S: "median best quiet_median quiet_n server_ns server_pct client_pct
# failures", the last four as quiet-run medians (all runs if none was quiet).
stats() {
  awk -v q="$QUIET_PCT" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : int((a[n / 2] + a[n / 2 + 1]) / 2))
    }
    { all[++n] = $1; if ($1 > best) best = $1; ca[n] = $2; sa[n] = $4; wa[n] = $5; fail += $6
      if ($3 <= q) { quiet[++nq] = $1; cq[nq] = $2; sq[nq] = $4; wq[nq] = $5 } }
    END { printf "%d %d %d %d %d %d %d %d\n", med(all, n), best, med(quiet, nq), nq,
                 nq ? med(cq, nq) : med(ca, n), nq ? med(sq, nq) : med(sa, n),
                 nq ? med(wq, nq) : med(wa, n), fail }' "$work/res.$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a && b) printf "%.2f", a / b; else printf "n/a" }'; }

declare -A MED QMED NQ BEST CPU
for w in $WINDOWS; do for s in "${servers[@]}"; do
  read -r med best qmed nq cpu _ <<<"$(stats "$s.$w")"
  k=$s.$w
  MED[$k]=$med QMED[$k]=$qmed NQ[$k]=$nq BEST[$k]=$best CPU[$k]=$cpu
done; done

echo "### ws: libcymg vs Node ws echo, $CONNS connections, $SIZE-byte messages, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved ($(($(date +%s) - t_start)) s in all); servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type."
echo "Node $("${NODE:-false}" --version 2>/dev/null || echo n/a), ws $(sed -n 's/^ *"version": "\(.*\)".*/\1/p' "$root/tests/node/node_modules/ws/package.json" 2>/dev/null || echo n/a)."
[ -n "$node_note" ] && echo "$node_note"
echo
echo "Client: bench/ws/load_cymg.c (libcymg), the same for both servers: $CONNS connections, each"
echo "keeping a fixed window of W messages in flight (the next is sent when an echo is back;"
echo "W = 1: one message in flight), binary messages, no compression, every echo checked."
echo
echo "| server, window | msgs/s (median) | quiet runs: median (n) | best | libcymg ÷ this: median, quiet, best | server CPU µs/msg | libcymg ÷ this, msgs per server CPU-s | CPU busy: server, client |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for w in $WINDOWS; do for s in "${servers[@]}"; do
  k=$s.$w
  read -r med best qmed nq cpu spct cpct fails <<<"$(stats "$k")"
  qcell="n/a (0)"
  [ "$nq" -gt 0 ] && qcell="$qmed ($nq)"
  rr="" rc=""
  if [ "$s" != cymg ]; then
    rr="$(ratio "${MED[cymg.$w]}" "$med"), $(ratio "${QMED[cymg.$w]}" "$qmed"), $(ratio "${BEST[cymg.$w]}" "$best")"
    rc=$(ratio "$cpu" "${CPU[cymg.$w]}")
  fi
  name="${LABEL[$s]}, W=$w"
  [ "$fails" -gt 0 ] && name="$name ($fails failed runs)"
  echo "| $name | $med | $qcell | $best | $rr | $(awk -v c="$cpu" 'BEGIN { printf "%.2f", c / 1000 }') | $rc | $spct%, $cpct% |"
done; done
echo
echo "System calls per message, server process ($count_with, one more ${COUNT_SECS}s session per configuration,"
echo "divided by the messages echoed; recv = read + readv + recvfrom, send = write + writev + sendto):"
echo
echo "| server, window | recv | send | epoll_wait | epoll_ctl | all |"
echo "|---|---:|---:|---:|---:|---:|"
for w in $WINDOWS; do for s in "${servers[@]}"; do echo "| ${LABEL[$s]}, W=$w | ${SYS[$s.$w]} |"; done; done
echo
if [ -n "${PID[node]:-}" ]; then
  for w in $WINDOWS; do
    if [ "${NQ[cymg.$w]}" -gt 0 ] && [ "${NQ[node.$w]}" -gt 0 ]; then
      r=$(ratio "${QMED[cymg.$w]}" "${QMED[node.$w]}") which="quiet medians"
    else
      r=$(ratio "${MED[cymg.$w]}" "${MED[node.$w]}") which="medians, too few quiet runs"
    fi
    echo "- W=$w: target libcymg ≥ 3x Node msgs/s: $r ($which) — $(awk -v r="$r" 'BEGIN { print (r >= 3 ? "**met**" : "**not met**") }');" \
      "per server CPU-second: $(ratio "${CPU[node.$w]}" "${CPU[cymg.$w]}")."
  done
  echo
fi
echo "Each run, msgs/s with the share of a CPU (%) other programs used meanwhile:"
echo
for w in $WINDOWS; do for s in "${servers[@]}"; do
  echo "- ${LABEL[$s]}, W=$w: $(awk '{ printf "%s%s (%s%%)", (NR > 1 ? ", " : ""), $1, $3 }' "$work/res.$s.$w")"
done; done
echo
echo "A run is quiet when other programs used at most ${QUIET_PCT}% of a CPU during it"
echo "(/proc/stat busy time minus the server's and the client's own time). Server CPU"
echo "µs/msg (user + system from /proc/PID/stat over the session, handshakes included)"
echo "and CPU busy (share of one CPU; the client's from its own getrusage over the"
echo "timed part) are quiet-run medians. A side near 100% is the bottleneck."
echo
echo "Command lines (ports chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmds[@]}" | sed "s|$root/||g"
for s in "${servers[@]}"; do echo "${CMD[$s]}"; done | sed "s|$root/||g"
printf '%s\n' "${commands[@]}" | sed -e "s|$root/||g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | awk '!seen[$0]++'
echo '```'
