#!/usr/bin/env bash
# TCP ping-pong: libcymg against a hand-written epoll loop, in the same run so both
# see the same machine and the same load. One connection on 127.0.0.1, 64-byte
# messages, one in flight. Prints a markdown table and the command lines used.
#
# Knobs (environment): RUNS (15) runs of SECS (1) seconds per configuration, the
# median is reported; SYSCALL_ROUNDS (20000) round trips for the syscall count;
# SERVER_CPU (0) and CLIENT_CPU (1) for taskset; BUILD (build) the CMake tree;
# COUNT_WITH (perf, strace or none; default: perf if it can, else strace).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
# Many short runs rather than a few long ones: on a shared machine load comes in
# bursts of seconds, and short runs are more likely to fall between them. One
# second is still some 30000 round trips.
RUNS=${RUNS:-15}
SECS=${SECS:-1}
SYSCALL_ROUNDS=${SYSCALL_ROUNDS:-20000}
# Time runs are bounded by SECS; this only catches a hung peer.
LIMIT=$((SECS + 20))

make_workdir

# ---- build: the library from the CMake tree, the two programs by hand ----
build_library cymg_static
bin="$BUILD/bench/tcp"
mkdir -p "$bin"
compile_program "$bin/pingpong_epoll" "$here/pingpong_epoll.c"
compile_program --libcymg "$bin/pingpong_cymg" "$here/pingpong_cymg.c"
pin_cpus

# Counting syscalls: the counter runs the program on the tested side.
choose_counter
counter_cmd() { # $1 = output file
  case "$count_with" in
    perf) echo perf stat -x, -o "$1" -e "$(perf_events recvfrom sendto epoll_wait)" -- ;;
    strace) echo strace -c -f -o "$1" ;;
  esac
}
# Prints "recvfrom sendto epoll_wait total" from a counter's output file.
read_counts() {
  counter_counts "$1" | awk '{ c[$1] = $2 + 0 } END { print c["recvfrom"] + 0, c["sendto"] + 0, c["epoll_wait"] + 0, c["total"] + 0 }'
}

commands=()
# run_pair SERVER CLIENT ROUNDS SECS [SIDE WRAP...]: one session; the client's
# result line goes to $work/result. WRAP (a counter) goes before the program on
# SIDE (server or client). Not called in a subshell, so that it can record its
# command lines.
run_pair() {
  local server=$1 client=$2 rounds=$3 secs=$4 side=${5:-none}
  shift 4
  [ $# -gt 0 ] && shift
  local srv_wrap=() cli_wrap=()
  if [ "$side" = server ]; then srv_wrap=("$@"); elif [ "$side" = client ]; then cli_wrap=("$@"); fi
  local portfile="$work/port"
  : >"$portfile"
  local scmd=("${srv_pin[@]}" timeout "$LIMIT" "${srv_wrap[@]}" "$bin/$server" server 0)
  "${scmd[@]}" >"$portfile" &
  PID[server]=$!
  local port
  port=$(wait_for_port "$portfile" "${PID[server]}")
  if [ -z "$port" ]; then
    echo "$server did not start" >&2
    return 1
  fi
  local ccmd=("${cli_pin[@]}" timeout "$LIMIT" "${cli_wrap[@]}" "$bin/$client" client "$port" "$rounds" "$secs")
  commands+=("${scmd[*]}  &&  ${ccmd[*]}")
  "${ccmd[@]}" >"$work/result"
  wait "${PID[server]}"
  unset "PID[server]"
  # The server's CPU time, printed as it exits, joins the client's line.
  echo "server_$(awk -F= '$1=="cpu_us" {print $0}' "$portfile")" >>"$work/result"
}

# name|server|client|side whose syscalls are counted
configs=(
  "epoll server, epoll client|pingpong_epoll|pingpong_epoll|server"
  "libcymg server, epoll client|pingpong_cymg|pingpong_epoll|server"
  "epoll server, libcymg client|pingpong_epoll|pingpong_cymg|client"
)

load_before=$(load_average)

# Busy CPU time of the whole machine in microseconds, to tell how much of a run's
# CPU went to other programs.
busy_us() { echo $(($(busy_ticks) * 1000000 / HZ)); }

# Runs are interleaved (A B C A B C ...) so a burst of load from elsewhere lands
# on every configuration instead of on one.
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r _ s c side <<<"${configs[$i]}"
    b0=$(busy_us)
    run_pair "$s" "$c" 1000000000 "$SECS"
    b1=$(busy_us)
    # Share of one CPU that others used during the run: busy time minus ours.
    others=$(awk -v b="$((b1 - b0))" -v secs="$SECS" '/^rounds=/ { for (f = 1; f <= NF; f++) {
           split($f, kv, "="); if (kv[1] == "cpu_us") c = kv[2] } }
         /^server_cpu_us=/ { split($0, kv, "="); s = kv[2] }
         END { o = (b - c - s) / (secs * 10000); printf "%d\n", o < 0 ? 0 : o }' "$work/result")
    echo "$others" >>"$work/others.$i"
    sed -n 's/.*rt_per_s=\([0-9]*\).*/\1/p' "$work/result" >>"$work/rate.$i"
    # CPU microseconds per round trip on the tested side, in nanoseconds so the
    # median stays an integer.
    awk -v side="$side" '/^rounds=/ { for (f = 1; f <= NF; f++) { split($f, kv, "=");
           if (kv[1] == "rounds") n = kv[2]; if (kv[1] == "cpu_us") c = kv[2] } }
         /^server_cpu_us=/ { split($0, kv, "="); s = kv[2] }
         END { printf "%d\n", n ? 1000 * (side == "server" ? s : c) / n : 0 }' \
      "$work/result" >>"$work/cpu.$i"
  done
done

# Syscalls per round trip: a fixed number of round trips under the counter.
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s c side <<<"${configs[$i]}"
  if [ "$count_with" = none ]; then
    echo "- - - - -" >"$work/sys.$i"
    continue
  fi
  read -ra wrap <<<"$(counter_cmd "$work/count.$i")"
  # Capped in time too, so that a loaded machine cannot stretch the run; the
  # counts are divided by the round trips the client actually made.
  run_pair "$s" "$c" "$SYSCALL_ROUNDS" "$SECS" "$side" "${wrap[@]}"
  rounds=$(sed -n 's/^rounds=\([0-9]*\).*/\1/p' "$work/result")
  echo "$(read_counts "$work/count.$i") $rounds" >"$work/sys.$i"
done

load_after=$(load_average)

# stats I: "median best quiet_median quiet_count" of round trips/s, and the CPU
# ns/rt median over quiet runs (all runs if none was quiet).
stats() { paste -d' ' "$work/rate.$1" "$work/others.$1" "$work/cpu.$1" | quiet_stats 2 3; }

read -r base base_best base_q _ <<<"$(stats 0)"
echo "### tcp: ping-pong, 1 connection, 64-byte messages, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type."
echo
echo "| configuration | round trips/s (median) | ratio vs epoll | quiet runs: median (n) | quiet ratio | best | best ratio | CPU µs/rt, tested side | syscalls/rt, tested side: recv, send, wait; all |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ _ side <<<"${configs[$i]}"
  read -r med best qmed nq cpu <<<"$(stats "$i")"
  qcell=$(quiet_cell "$qmed" "$nq")
  sys=$(awk '{ n = $5; if ($1 == "-" || n == 0) print "n/a";
        else printf "%.2f, %.2f, %.2f; %.2f", $1/n, $2/n, $3/n, $4/n }' "$work/sys.$i")
  echo "| $name | $med | $(ratio "$med" "$base" 3) | $qcell | $(ratio "$qmed" "$base_q" 3) | $best | $(ratio "$best" "$base_best" 3) | $side: $(micros "$cpu") | $sys |"
done
echo
echo "Each run, round trips/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ _ _ <<<"${configs[$i]}"
  echo "- $name: $(paste -d' ' "$work/rate.$i" "$work/others.$i" | each_run 1 2)"
done
echo
echo "A run is quiet when other programs used at most ${QUIET_PCT}% of a CPU during it"
echo "(machine busy time from /proc/stat minus the two processes' own user + system"
echo "time). Noise only ever slows a run down, so on a shared machine the quiet"
echo "median and the best run are the figures to compare. CPU µs/rt is the tested"
echo "side's user + system time per round trip (median of quiet runs, or of all if"
echo "none was quiet). Syscalls are counted with $count_with over up to $SYSCALL_ROUNDS"
echo "round trips, setup and teardown included."
echo
echo "Command lines (the port is chosen by the server):"
echo
echo '```'
printf '%s\n' "${cc_cmds[@]}"
# One example of each distinct command shape, not every repetition.
printf '%s\n' "${commands[@]}" | sed -e 's/ client [0-9]* / client PORT /' -e "s|$work/|\$TMP/|g" | unique
echo '```'
