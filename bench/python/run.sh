#!/usr/bin/env bash
# Python HTTP servers: cymongoose (the binding) against aiohttp, uvicorn (raw
# ASGI) and gunicorn (raw WSGI; sync worker, and gthread), with libcymg's own C
# hello server (bench/http/hello_cymg.c) as the ceiling, all in the same run so
# they see the same machine and the same load. Every server answers GET / with
# the 5-byte body "hello"; wrk -t1 -c50 with keep-alive drives each in turn.
# Prints a markdown table and the command lines used.
#
# Knobs (environment): RUNS (15) runs of SECS (1) seconds per configuration,
# interleaved, median reported; CONNS (50) wrk connections; QUIET_PCT (10);
# SERVER_CPU (0) and CLIENT_CPU (1) for taskset; BUILD (build) the CMake tree;
# PYTHON (/usr/bin/python3: Debian's, which has aiohttp, uvicorn, gunicorn);
# COUNT_WITH (perf, strace or none) for the syscall counts of the two libcymg
# servers; COUNT_SECS (2).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
RUNS=${RUNS:-15}
SECS=${SECS:-1}
COUNT_SECS=${COUNT_SECS:-2}
CONNS=${CONNS:-50}
QUIET_PCT=${QUIET_PCT:-10}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
HZ=$(getconf CLK_TCK)

work=$(mktemp -d)
declare -A PID PORT WPID CMD # per server: the process started, its port, the process that serves
perf_pid=
cleanup() {
  # Only the processes this script started, by their ids.
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; fi
  for s in "${!PID[@]}"; do kill "${PID[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "### python: skipped (wrk is not installed: scripts/deps.sh bench)"
  exit 0
fi

# ---- build: the library and the extension from the CMake tree, the C server by hand ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" ||
    { cat "$work/cmake.log" >&2; exit 1; }
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
case "$build_type" in
  Release | RelWithDebInfo) ;;
  *) echo "warning: $BUILD is a '${build_type:-unset}' build; figures will not be representative" >&2 ;;
esac
cmake --build "$BUILD" --target cymg_static cymg_python cymg_python_files -j2 >"$work/build.log" ||
  { cat "$work/build.log" >&2; exit 1; }
bin="$BUILD/bench/http"
mkdir -p "$bin"
CC=${CC:-cc}
cc_cmd=("$CC" -O2 -std=c11 -Wall -Wextra -I"$root/include" -o "$bin/hello_cymg"
  "$root/bench/http/hello_cymg.c" "$BUILD/libcymg.a" -lssl -lcrypto -lz -lpthread)
"${cc_cmd[@]}"

srv_pin=() cli_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv_pin=(taskset -c "$SERVER_CPU")
  cli_pin=(taskset -c "$CLIENT_CPU")
fi

have() { "$PYTHON" -c "import $1" 2>/dev/null; }
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME PORT_MODE CMD...: starts a server pinned to the server CPU. PORT_MODE
# "print": the server prints "port N" (it was given port 0); a number: the port
# it was told to use. Waits until it answers "hello".
start() {
  local name=$1 pmode=$2
  shift 2
  local cmd=("${srv_pin[@]}" "$@")
  (cd "$here" && PYTHONPATH="$BUILD/python" exec "${cmd[@]}") >"$work/$name.out" 2>"$work/$name.err" &
  PID[$name]=$!
  CMD[$name]="$(cd "$here" && printf '%q ' "$@")"
  local port= ok=
  for _ in $(seq 200); do
    if [ "$pmode" = print ]; then
      port=$(awk '$1 == "port" { print $2 }' "$work/$name.out")
    else
      port=$pmode
    fi
    if [ -n "$port" ] && [ "$(curl -fs "http://127.0.0.1:$port/" 2>/dev/null)" = hello ]; then
      ok=1
      break
    fi
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$ok" ]; then
    echo "$name did not start or did not answer hello:" >&2
    cat "$work/$name.err" >&2
    kill "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
    return 1
  fi
  PORT[$name]=$port
  # The process whose CPU time counts: gunicorn's worker (the only child of
  # its master), else the process itself (taskset execs it).
  WPID[$name]=${PID[$name]}
  case "$name" in gunicorn*) WPID[$name]=$(pgrep -P "${PID[$name]}" | head -1) ;; esac
}

# name|server key|label
configs=()
skipped=()
start cymg print "$bin/hello_cymg" 0 && configs+=("libcymg C (hello_cymg.c)|cymg")
start cymongoose print "$PYTHON" hello_cymongoose.py 0 && configs+=("cymongoose|cymongoose")
if have aiohttp; then
  start aiohttp print "$PYTHON" hello_aiohttp.py 0 && configs+=("aiohttp|aiohttp")
else skipped+=("aiohttp (python3-aiohttp)"); fi
if have uvicorn; then
  http_impl=h11
  have httptools && http_impl=httptools
  p=$(free_port)
  start uvicorn "$p" "$PYTHON" -m uvicorn --host 127.0.0.1 --port "$p" --workers 1 \
    --http "$http_impl" --loop asyncio --no-access-log --log-level warning hello_asgi:app &&
    configs+=("uvicorn (raw ASGI, $http_impl, asyncio loop)|uvicorn")
else skipped+=("uvicorn (python3-uvicorn)"); fi
if command -v gunicorn >/dev/null; then
  gun=$(command -v gunicorn)
  p=$(free_port)
  start gunicorn_sync "$p" "$PYTHON" "$gun" --workers 1 --worker-class sync \
    --bind "127.0.0.1:$p" --log-level warning hello_wsgi:app &&
    configs+=("gunicorn sync (raw WSGI)|gunicorn_sync")
  if "$PYTHON" -c 'import gunicorn.workers.gthread' 2>/dev/null; then
    p=$(free_port)
    start gunicorn_gthread "$p" "$PYTHON" "$gun" --workers 1 --worker-class gthread --threads 1 \
      --bind "127.0.0.1:$p" --log-level warning hello_wsgi:app &&
      configs+=("gunicorn gthread, 1 thread (raw WSGI)|gunicorn_gthread")
  fi
else skipped+=("gunicorn (gunicorn)"); fi
[ -n "${PORT[cymongoose]:-}" ] || { echo "cymongoose server did not start" >&2; exit 1; }

# ---- measuring (as bench/http/run.sh) ----
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
child_ticks() {
  awk -v hz="$HZ" 'NR == 2 { t = 0; for (f = 1; f <= 2; f++) { split($f, a, /[ms]/);
    t += a[1] * 60 + a[2] } printf "%d\n", t * hz + 0.5 }' "$1"
}
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /us$/) n *= 1;
  else if (v ~ /s$/) n *= 1000000; printf "%d\n", n }'; }

commands=()
run_wrk() { # server out [seconds]
  local wcmd=("${cli_pin[@]}" wrk -t1 -c"$CONNS" -d"${3:-$SECS}s" --latency "http://127.0.0.1:${PORT[$1]}/")
  commands+=("${wcmd[*]}")
  timeout $((${3:-$SECS} + 30)) "${wcmd[@]}" >"$2" 2>&1
}

# One timed session; appends "rate p99_us cpu_ns_per_req others_pct errors
# server_pct wrk_pct" to $work/res.$i.
measure() {
  local i=$1 server=$2 pid=${WPID[$2]}
  local s0 b0 w0 s1 b1 w1 t0 t1
  s0=$(cpu_ticks "$pid")
  b0=$(busy_ticks)
  times >"$work/times.0"
  t0=$(date +%s%N)
  run_wrk "$server" "$work/wrk.out" || true
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
  errs=$(awk '/Non-2xx/ { e += $NF } /Socket errors/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 } END { print e + 0 }' "$work/wrk.out")
  awk -v rate="${rate:-0}" -v reqs="${reqs:-0}" -v p99="$p99" -v errs="$errs" -v hz="$HZ" \
    -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v secs="$(((t1 - t0) / 1000000))e-3" 'BEGIN {
      o = (b - s - w) * 100 / (secs * hz); if (o < 0) o = 0
      printf "%d %d %d %d %d %d %d\n", rate, p99, reqs ? s * 1e9 / hz / reqs : 0, o, errs,
        s * 100 / (secs * hz), w * 100 / (secs * hz) }' >>"$work/res.$i"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r _ s <<<"${configs[$i]}"
    measure "$i" "$s"
  done
done

# ---- syscalls per request of the two libcymg servers (the C one and the binding) ----
count_with=${COUNT_WITH:-}
if [ -z "$count_with" ]; then
  if perf stat -e syscalls:sys_enter_recvfrom -o /dev/null true >/dev/null 2>&1; then count_with=perf
  elif command -v strace >/dev/null; then count_with=strace
  else count_with=none; fi
fi
declare -A SYS
for s in cymg cymongoose; do
  SYS[$s]="n/a"
  [ "$count_with" = none ] && continue
  out="$work/count.$s"
  case "$count_with" in
    perf)
      perf stat -x, -o "$out" -e syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,raw_syscalls:sys_enter \
        -p "${WPID[$s]}" &
      ;;
    strace) strace -c -f -o "$out" -p "${WPID[$s]}" 2>/dev/null & ;;
  esac
  perf_pid=$!
  sleep 0.5
  run_wrk "$s" "$work/wrk.count" "$COUNT_SECS" || true
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
  reqs=$(awk '/requests in/ { print $1 }' "$work/wrk.count")
  case "$count_with" in
    perf) counts=$(awk -F, '{ sub(/^(raw_)?syscalls:sys_enter_?/, "", $3); if ($3 == "") $3 = "total"; print $3, $1 }' "$out") ;;
    strace) counts=$(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 } $NF == "total" { print "total", $3 }' "$out") ;;
  esac
  SYS[$s]=$(awk -v n="${reqs:-0}" '{ c[$1] = $2 + 0 } END { if (!n) { print "n/a"; exit }
    printf "%.2f, %.2f, %.2f; %.2f\n", (c["recvfrom"] + c["read"]) / n, (c["sendto"] + c["write"]) / n,
      c["epoll_wait"] / n, c["total"] / n }' <<<"$counts")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

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

declare -A MED QMED NQ BEST CPU
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s <<<"${configs[$i]}"
  read -r med best qmed nq _ cpu _ <<<"$(stats "$i")"
  MED[$s]=$med QMED[$s]=$qmed NQ[$s]=$nq BEST[$s]=$best CPU[$s]=$cpu
done
# The figure a ratio uses: the quiet median when both sides had quiet runs, else the median.
pick() { if [ "${NQ[$1]}" -gt 0 ] && [ "${NQ[$2]}" -gt 0 ]; then echo "${QMED[$1]} ${QMED[$2]}"; else echo "${MED[$1]} ${MED[$2]}"; fi; }

echo "### python: cymongoose vs aiohttp, uvicorn, gunicorn and libcymg's C server, wrk -t1 -c$CONNS keep-alive, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved ($(($(date +%s) - t_start)) s in all); servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type. $("$PYTHON" -V 2>&1) ($PYTHON);"
echo "$("$PYTHON" -c 'import aiohttp; print("aiohttp", aiohttp.__version__)' 2>/dev/null || true)," \
  "$("$PYTHON" -c 'import uvicorn; print("uvicorn", uvicorn.__version__)' 2>/dev/null || true)," \
  "$(gunicorn --version 2>/dev/null | sed 's/[()]//g' || true)."
[ ${#skipped[@]} -gt 0 ] && echo "Not installed, left out: ${skipped[*]}."
echo
echo "Every server answers GET / with 200 and the 5-byte body \"hello\"."
echo
echo "| server | req/s (median) | quiet runs: median (n) | best | cymongoose ÷ this, req/s | cymongoose ÷ this, req per server CPU-s | p99 latency | server CPU µs/req | CPU busy: server, wrk |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for i in "${!configs[@]}"; do
  IFS='|' read -r name s <<<"${configs[$i]}"
  read -r med best qmed nq p99 cpu errs spct wpct <<<"$(stats "$i")"
  qcell="n/a (0)"
  [ "$nq" -gt 0 ] && qcell="$qmed ($nq)"
  rr="" rc=""
  if [ "$s" != cymongoose ]; then
    read -r a b <<<"$(pick cymongoose "$s")"
    rr=$(ratio "$a" "$b")
    rc=$(ratio "$cpu" "${CPU[cymongoose]}")
  fi
  [ "$errs" -gt 0 ] && name="$name ($errs errors)"
  p99c=$(awk -v u="$p99" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d µs", u }')
  cpuc=$(awk -v c="$cpu" 'BEGIN { printf "%.2f", c / 1000 }')
  echo "| $name | $med | $qcell | $best | $rr | $rc | $p99c | $cpuc | $spct%, $wpct% |"
done
echo
if [ -n "${QMED[aiohttp]:-}" ]; then
  read -r a b <<<"$(pick cymongoose aiohttp)"
  r=$(ratio "$a" "$b")
  echo "- Target cymongoose ≥ 3x aiohttp req/s: $r — $(awk -v r="$r" 'BEGIN { print (r >= 3 ? "**met**" : "**not met**") }')."
fi
read -r a b <<<"$(pick cymongoose cymg)"
r=$(ratio "$a" "$b")
rcpu=$(ratio "${CPU[cymg]}" "${CPU[cymongoose]}")
echo "- Target cymongoose ≥ 70% of libcymg C req/s: $r — $(awk -v r="$r" 'BEGIN { print (r >= 0.7 ? "**met**" : "**not met**") }')" \
  "on throughput; per server CPU-second (C µs/req ÷ cymongoose µs/req): $rcpu — $(awk -v r="$rcpu" 'BEGIN { print (r >= 0.7 ? "**met**" : "**not met**") }')."
echo "- System calls per request ($count_with, one more ${COUNT_SECS}s session): recv, send, epoll_wait; all —" \
  "libcymg C: ${SYS[cymg]}; cymongoose: ${SYS[cymongoose]}."
echo
echo "Each run, req/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ <<<"${configs[$i]}"
  echo "- $name: $(awk '{ printf "%s%s (%s%%)", (NR > 1 ? ", " : ""), $1, $4 }' "$work/res.$i")"
done
echo
echo "A run is quiet when other programs used at most ${QUIET_PCT}% of a CPU during it"
echo "(/proc/stat busy time minus the server's and wrk's own time). Ratios use quiet"
echo "medians when both sides had quiet runs. p99 (wrk --latency), server CPU µs/req"
echo "(user + system from /proc/PID/stat; gunicorn: its worker) and CPU busy are"
echo "quiet-run medians. When wrk is near 100% it is the bottleneck, and requests per"
echo "server CPU-second is the comparison to read. gunicorn's sync worker does not"
echo "keep connections alive: it closes after every reply and wrk reconnects."
echo
echo "Command lines (run in bench/python; ports chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmd[*]}" | sed "s|$root/||g"
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s <<<"${configs[$i]}"
  echo "${srv_pin[*]} ${CMD[$s]}"
done | sed -e "s|$root/||g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' -e 's|--port [0-9]*|--port PORT|'
echo "PYTHONPATH=$(realpath --relative-to="$root" "$BUILD")/python for the cymongoose server"
printf '%s\n' "${commands[@]}" | sed -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | awk '!seen[$0]++'
echo '```'
