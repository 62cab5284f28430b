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
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
RUNS=${RUNS:-9}
SECS=${SECS:-2}
CONNS=${CONNS:-50}
WINDOWS=${WINDOWS:-1 8}
SIZE=${SIZE:-64}
COUNT_SECS=${COUNT_SECS:-2}
NODE=${NODE:-$(command -v node || true)}

make_workdir

# ---- build: the library from the CMake tree, the server and the client by hand ----
build_library cymg_static
bin="$BUILD/bench/ws"
mkdir -p "$bin"
for prog in echo_cymg load_cymg; do
  compile_program --libcymg "$bin/$prog" "$here/$prog.c"
done
pin_cpus

servers=()
start_server cymg "$bin/echo_cymg" 0 || exit 1
servers+=(cymg)
node_note=
if [ -z "$NODE" ]; then
  node_note="node is not installed (Debian: nodejs): the Node row is left out."
elif [ ! -f "$root/tests/node/node_modules/ws/package.json" ]; then
  node_note="the ws package is not installed (scripts/deps-node.sh): the Node row is left out."
else
  start_server node "$NODE" "$here/echo_node.js" 0 && servers+=(node)
fi
declare -A LABEL=([cymg]="libcymg (echo_cymg.c)" [node]="Node ws (echo_node.js)")

# ---- measuring ----
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
  local failed=0
  cpu_window_start "$pid"
  run_client "$server" "$window" "$work/client.out" "$SECS" || failed=1
  cpu_window_end "$pid"
  [ "$failed" = 1 ] && cat "$work/client.out" >&2
  awk -v hz="$HZ" -v s="$win_server" -v o="$win_others" -v sp="$win_server_pct" -v failed="$failed" '
    { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] } }
    END {
      printf "%d %d %d %d %d %d\n", v["msgs_per_s"], v["msgs"] ? s * 1e9 / hz / v["msgs"] : 0, o,
        sp, v["seconds"] ? v["cpu_us"] / 1e4 / v["seconds"] : 0, failed }' \
    "$work/client.out" >>"$work/res.$server.$window"
}

load_before=$(load_average)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for w in $WINDOWS; do for s in "${servers[@]}"; do measure "$s" "$w"; done; done
done

# ---- syscalls per message: one more session per server with the server
# process under a counter (perf stat -p counts all its threads) ----
choose_counter
declare -A SYS
for w in $WINDOWS; do for s in "${servers[@]}"; do
  k=$s.$w
  SYS[$k]="n/a | | | |"
  [ "$count_with" = none ] && continue
  counter_attach "${PID[$s]}" "$work/count.$k" recvfrom read readv sendto write writev \
    epoll_wait epoll_pwait epoll_ctl
  run_client "$s" "$w" "$work/client.count" "$COUNT_SECS" || true
  counter_detach
  msgs=$(awk '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); if (kv[1] == "msgs") print kv[2] } }' "$work/client.count")
  counts=$(counter_counts "$work/count.$k")
  SYS[$k]=$(awk -v n="${msgs:-0}" '{ c[$1] = $2 + 0 } END { if (!n) { print "n/a | | | |"; exit }
    printf "%.2f | %.2f | %.2f | %.2f | %.2f\n", (c["recvfrom"] + c["read"] + c["readv"]) / n,
      (c["sendto"] + c["write"] + c["writev"]) / n, (c["epoll_wait"] + c["epoll_pwait"]) / n,
      c["epoll_ctl"] / n, c["total"] / n }' <<<"$counts")
done; done
load_after=$(load_average)

# stats S: "median best quiet_median quiet_n server_ns server_pct client_pct
# failures", the last four as quiet-run medians (all runs if none was quiet).
stats() { quiet_stats 3 2 4 5 +6 <"$work/res.$1"; }

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
  qcell=$(quiet_cell "$qmed" "$nq")
  rr="" rc=""
  if [ "$s" != cymg ]; then
    rr="$(ratio "${MED[cymg.$w]}" "$med"), $(ratio "${QMED[cymg.$w]}" "$qmed"), $(ratio "${BEST[cymg.$w]}" "$best")"
    rc=$(ratio "$cpu" "${CPU[cymg.$w]}")
  fi
  name="${LABEL[$s]}, W=$w"
  [ "$fails" -gt 0 ] && name="$name ($fails failed runs)"
  echo "| $name | $med | $qcell | $best | $rr | $(micros "$cpu") | $rc | $spct%, $cpct% |"
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
    echo "- W=$w: target libcymg ≥ 3x Node msgs/s: $r ($which) — $(met "$r" 3);" \
      "per server CPU-second: $(ratio "${CPU[node.$w]}" "${CPU[cymg.$w]}")."
  done
  echo
fi
echo "Each run, msgs/s with the share of a CPU (%) other programs used meanwhile:"
echo
for w in $WINDOWS; do for s in "${servers[@]}"; do
  echo "- ${LABEL[$s]}, W=$w: $(each_run 1 3 <"$work/res.$s.$w")"
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
printf '%s\n' "${commands[@]}" | sed -e "s|$root/||g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | unique
echo '```'
