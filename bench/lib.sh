# shellcheck shell=bash disable=SC2034 # the variables set here are the scripts'
# What the benchmarks in bench/*/run.sh have in common, sourced by each after it
# sets `here` (its own directory):
#
#   - knobs: BUILD (build) the CMake tree, SERVER_CPU (0) and CLIENT_CPU (1) for
#     taskset, QUIET_PCT (10), CC (cc), COUNT_WITH (perf, strace or none);
#   - make_workdir: the temporary directory $work, and on exit the end of the
#     processes recorded in PID[] and counter_pid, by their ids;
#   - build_library, compile_program: the Release build in $BUILD and the
#     benchmark's own programs, with the command lines kept in cc_cmds;
#   - pin_cpus, start_server: servers on SERVER_CPU, clients on CLIENT_CPU;
#   - cpu_window_start/_end: the CPU time a server, the client and the rest of
#     the machine used during one session, to tell the quiet runs;
#   - choose_counter, counter_attach/_detach, counter_counts: system calls
#     counted with perf's tracepoints, or strace where perf cannot;
#   - quiet_stats, ratio and the cell formatters for the markdown tables.
#
# Each script keeps its own servers, clients, configurations and tables.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$root/build}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
QUIET_PCT=${QUIET_PCT:-10}
CC=${CC:-cc}
CFLAGS=(-O2 -std=c11 -Wall -Wextra)
HZ=$(getconf CLK_TCK)

# ---- the work directory and the processes to end ----

# Per server name: the process started, its port, its command line.
declare -A PID PORT CMD
counter_pid=

# make_workdir: creates $work and ends, on exit, only the processes this script
# started (PID[], counter_pid), by their ids.
make_workdir() {
  work=$(mktemp -d)
  trap cleanup EXIT
}
cleanup() {
  if [ -n "$counter_pid" ]; then kill -INT "$counter_pid" 2>/dev/null || true; fi
  local s
  for s in "${!PID[@]}"; do kill "${PID[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# skip_without COMMAND BENCH: prints a one-line result and exits 0 when COMMAND
# is missing.
skip_without() {
  command -v "$1" >/dev/null && return 0
  echo "### $2: skipped ($1 is not installed: scripts/deps.sh bench)"
  exit 0
}

# ---- building ----

# build_library TARGET...: configures $BUILD as Release if it has no cache yet,
# warns when it is another kind of build, and builds the TARGETs (cymg_static,
# the library the programs link). Sets build_type.
build_library() {
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" ||
      { cat "$work/cmake.log" >&2; exit 1; }
  fi
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
  case "$build_type" in
    Release | RelWithDebInfo) ;;
    *) echo "warning: $BUILD is a '${build_type:-unset}' build; figures will not be representative" >&2 ;;
  esac
  cmake --build "$BUILD" --target "$@" -j2 >"$work/build.log" ||
    { cat "$work/build.log" >&2; exit 1; }
}

# compile_program [--libcymg] OUT SOURCE: one program, with CFLAGS, linked with
# libcymg if asked; its command line is appended to cc_cmds.
cc_cmds=()
compile_program() {
  local with_lib=
  if [ "$1" = --libcymg ]; then with_lib=1; shift; fi
  local cmd=("$CC" "${CFLAGS[@]}")
  [ -n "$with_lib" ] && cmd+=(-I"$root/include")
  cmd+=(-o "$1" "$2")
  if [ -n "$with_lib" ]; then
    cmd+=("$BUILD/libcymg.a" -lssl -lcrypto -lz -lpthread)
    # A library built with the io_uring backend needs liburing too.
    grep -q '^CYMG_IO_URING:BOOL=ON' "$BUILD/CMakeCache.txt" && cmd+=(-luring)
  fi
  "${cmd[@]}"
  cc_cmds+=("${cmd[*]}")
}

# ---- servers and clients ----

# pin_cpus: srv_pin and cli_pin, the taskset prefixes for the two sides. Pinning
# needs two CPUs; on one, both sides simply share it.
pin_cpus() {
  srv_pin=() cli_pin=()
  if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    srv_pin=(taskset -c "$SERVER_CPU")
    cli_pin=(taskset -c "$CLIENT_CPU")
  fi
}

# wait_for_port FILE PID: prints the N of the "port N" line the server writes to
# FILE, once it has; nothing if the process ends or 10 s pass first.
wait_for_port() {
  local port='' _
  for _ in $(seq 500); do
    port=$(awk '$1 == "port" { print $2 }' "$1")
    [ -n "$port" ] && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.02
  done
  echo "$port"
}

# start_server NAME CMD...: starts CMD on the server CPU, a server that prints
# "port N"; sets PID[NAME], PORT[NAME] and CMD[NAME].
start_server() {
  local name=$1
  shift
  local cmd=("${srv_pin[@]}" "$@")
  "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" &
  PID[$name]=$!
  CMD[$name]="${cmd[*]}"
  local port
  port=$(wait_for_port "$work/$name.out" "${PID[$name]}")
  [ -n "$port" ] || { server_failed "$name" "did not start"; return 1; }
  PORT[$name]=$port
}

# server_failed NAME WHY: reports a server that did not come up, with what it
# wrote to stderr, and ends it.
server_failed() {
  echo "$1 $2:" >&2
  cat "$work/$1.err" >&2
  kill "${PID[$1]}" 2>/dev/null || true
  unset "PID[$1]"
}

# ---- CPU accounting, to tell the quiet runs ----

# utime + stime of one process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Busy time of the whole machine in ticks (user, nice, system, irq, softirq, steal).
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU ticks of this shell's reaped children (the client runs as one): `times
# >FILE` must run in this shell, not in a $(...) subshell, whose children have
# used nothing; this reads that file.
child_ticks() {
  awk -v hz="$HZ" 'NR == 2 { t = 0; for (f = 1; f <= 2; f++) { split($f, a, /[ms]/);
    t += a[1] * 60 + a[2] } printf "%d\n", t * hz + 0.5 }' "$1"
}

# cpu_window_start PID ... cpu_window_end PID, around one session, both called in
# this shell: sets win_server (ticks of PID), win_busy (ticks of the machine),
# win_client (ticks of this shell's children), win_secs (wall time), and as % of
# one CPU win_others (busy time less server and client: other programs),
# win_server_pct and win_client_pct.
cpu_window_start() {
  _win_s0=$(cpu_ticks "$1")
  _win_b0=$(busy_ticks)
  times >"$work/times.0"
  _win_t0=$(date +%s%N)
}
cpu_window_end() {
  local t1 b1 s1
  t1=$(date +%s%N)
  times >"$work/times.1"
  b1=$(busy_ticks)
  s1=$(cpu_ticks "$1")
  win_server=$((s1 - _win_s0))
  win_busy=$((b1 - _win_b0))
  win_client=$(($(child_ticks "$work/times.1") - $(child_ticks "$work/times.0")))
  win_secs="$(((t1 - _win_t0) / 1000000))e-3"
  read -r win_others win_server_pct win_client_pct < <(awk -v hz="$HZ" -v s="$win_server" \
    -v b="$win_busy" -v w="$win_client" -v secs="$win_secs" 'BEGIN {
      o = (b - s - w) * 100 / (secs * hz); if (o < 0) o = 0
      printf "%d %d %d\n", o, s * 100 / (secs * hz), w * 100 / (secs * hz) }')
}

# ---- counting system calls ----

# choose_counter: count_with is COUNT_WITH, else perf if it can read the syscall
# tracepoints (they cost little and don't perturb the timing), else strace -c
# (works where perf doesn't: root or a low perf_event_paranoid), else none.
choose_counter() {
  count_with=${COUNT_WITH:-}
  if [ -n "$count_with" ]; then
    : # chosen by the caller
  elif perf stat -e syscalls:sys_enter_recvfrom -o /dev/null true >/dev/null 2>&1; then
    count_with=perf
  elif command -v strace >/dev/null; then
    count_with=strace
  else
    count_with=none
  fi
}

# perf_events NAME...: the perf events for these system calls, and all of them.
perf_events() {
  local ev=() n
  for n in "$@"; do ev+=("syscalls:sys_enter_$n"); done
  ev+=(raw_syscalls:sys_enter)
  (IFS=,; echo "${ev[*]}")
}

# counter_attach PID OUT NAME...: counts the system calls of process PID (all its
# threads) into OUT, perf counting the NAMEd ones and all; returns once attached.
# counter_detach stops it.
counter_attach() {
  local pid=$1 out=$2
  shift 2
  case "$count_with" in
    perf) perf stat -x, -o "$out" -e "$(perf_events "$@")" -p "$pid" & ;;
    strace) strace -c -f -o "$out" -p "$pid" 2>/dev/null & ;;
    *) return 1 ;;
  esac
  counter_pid=$!
  sleep 0.5 # attached before the first request
}
counter_detach() {
  kill -INT "$counter_pid" 2>/dev/null || true
  wait "$counter_pid" 2>/dev/null || true
  counter_pid=
}

# counter_counts OUT: "name count" lines from a counter's output file, "total"
# for all system calls. x86-64 glibc's recv/send are recvfrom/sendto.
counter_counts() {
  case "$count_with" in
    perf) awk -F, '{ sub(/^(raw_)?syscalls:sys_enter_?/, "", $3); if ($3 == "") $3 = "total"; print $3, $1 }' "$1" ;;
    # Columns: % time, seconds, usecs/call, calls, [errors], syscall.
    strace) awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 }' "$1" ;;
  esac
}

# ---- statistics and tables ----

# quiet_stats OTHERS_COL [COL | +COL]... <RUNS: one line per run in, column 1 the
# rate; prints "median best quiet_median quiet_n", then for each COL its median
# over the quiet runs (all runs if none was quiet) and for each +COL its sum over
# all runs. A run is quiet when other programs used at most QUIET_PCT% of a CPU
# (column OTHERS_COL).
quiet_stats() {
  awk -v q="$QUIET_PCT" -v oc="$1" -v spec="${*:2}" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : int((a[n / 2] + a[n / 2 + 1]) / 2))
    }
    BEGIN { k = split(spec, cols, " ") }
    { all[++n] = $1; if ($1 > best) best = $1; quiet = $oc <= q; if (quiet) rq[++nq] = $1
      for (c = 1; c <= k; c++) {
        f = cols[c] + 0
        if (cols[c] ~ /^\+/) sum[c] += $f
        else { va[c, n] = $f; if (quiet) vq[c, nq] = $f }
      } }
    END {
      printf "%d %d %d %d", med(all, n), best, med(rq, nq), nq
      for (c = 1; c <= k; c++) {
        if (cols[c] ~ /^\+/) { printf " %d", sum[c]; continue }
        delete x; m = nq ? nq : n
        for (i = 1; i <= m; i++) x[i] = nq ? vq[c, i] : va[c, i]
        printf " %d", med(x, m)
      }
      printf "\n" }'
}

# ratio A B [DECIMALS]: A / B, or n/a when either is 0 or missing.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (a && b) printf "%.*f", d, a / b; else printf "n/a" }'; }
# met VALUE MIN: **met** or **not met**.
met() { awk -v r="$1" -v m="$2" 'BEGIN { print (r >= m ? "**met**" : "**not met**") }'; }
# quiet_cell MEDIAN N: "MEDIAN (N)", or "n/a (0)" without quiet runs.
quiet_cell() { if [ "$2" -gt 0 ]; then echo "$1 ($2)"; else echo "n/a (0)"; fi; }
# micros NANOS: nanoseconds as microseconds, 2 decimals.
micros() { awk -v c="$1" 'BEGIN { printf "%.2f", c / 1000 }'; }
# latency MICROS: "N µs" below a millisecond, else "N.NN ms".
latency() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d µs", u }'; }
# each_run RATE_COL OTHERS_COL <RUNS: "rate (others%), ..." for the runs listed.
each_run() { awk -v r="$1" -v o="$2" '{ printf "%s%s (%s%%)", (NR > 1 ? ", " : ""), $r, $o }'; }
# load_average: the 1, 5 and 15 minute load averages.
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
# unique: the lines of stdin, each first occurrence only.
unique() { awk '!seen[$0]++'; }

# ---- memory per idle connection (bench/tls, bench/http/idle.sh) ----

# rss_kb PID: the resident set of process PID in KiB (VmRSS).
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# idle_bytes PID PORT N MODE: the server PID's resident set before, and after
# bench/idle.py (on the client CPU, in its own process) has made N connections
# to PORT, each after one completed keep-alive request (MODE tls or plain), and
# holds them; prints the difference divided by the connections held, in bytes,
# or n/a. The connections are closed before it returns, and it waits until the
# server has no established connection on PORT left, so the next measurement
# starts from the same state.
idle_bytes() {
  local pid=$1 port=$2 n=$3 mode=$4 before after ready='' held=0 _
  before=$(rss_kb "$pid")
  coproc HOLD { "${cli_pin[@]}" "${PY:-/usr/bin/python3}" "$root/bench/idle.py" "$port" "$n" "$mode"; }
  read -r ready held <&"${HOLD[0]}" || true
  after=$(rss_kb "$pid")
  exec {HOLD[1]}>&-
  wait "$HOLD_PID" 2>/dev/null || true
  for _ in $(seq 500); do
    [ "$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)" -eq 0 ] && break
    sleep 0.02
  done
  if [ "$ready" = ready ] && [ "${held:-0}" -gt 0 ]; then
    echo $(((after - before) * 1024 / held))
  else
    echo n/a
  fi
}

# ---- wrk (bench/http and bench/python) ----

# Latency "728.00us" / "2.90ms" / "1.02s" in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /us$/) n *= 1;
  else if (v ~ /s$/) n *= 1000000; printf "%d\n", n }'; }

# wrk_result WRK_OUT: after cpu_window_end, the line "rate p99_us cpu_ns_per_req
# others_pct errors server_pct wrk_pct" for one wrk session (CPU shares in % of
# one CPU). Errors: non-2xx answers and socket errors (connect, read, write,
# timeout).
wrk_result() {
  local rate reqs p99 errs
  rate=$(awk '/^Requests\/sec:/ { printf "%d\n", $2 }' "$1")
  reqs=$(awk '/requests in/ { print $1 }' "$1")
  p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$1")")
  errs=$(awk '/Non-2xx/ { e += $NF } /Socket errors/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 } END { print e + 0 }' "$1")
  awk -v rate="${rate:-0}" -v reqs="${reqs:-0}" -v p99="$p99" -v errs="$errs" -v hz="$HZ" -v s="$win_server" \
    -v o="$win_others" -v sp="$win_server_pct" -v wp="$win_client_pct" 'BEGIN {
      printf "%d %d %d %d %d %d %d\n", rate, p99, reqs ? s * 1e9 / hz / reqs : 0, o, errs, sp, wp }'
}
# wrk_requests WRK_OUT: the number of requests wrk completed.
wrk_requests() { awk '/requests in/ { print $1 }' "$1"; }
