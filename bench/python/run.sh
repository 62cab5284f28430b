#!/usr/bin/env bash
# Python HTTP servers: cymongoose (the binding) against aiohttp, uvicorn (raw
# ASGI; and cymongoose.asgi against uvicorn with a raw and a Starlette app) and gunicorn (raw WSGI; sync worker, and gthread), with libcymg's own C
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
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
RUNS=${RUNS:-15}
SECS=${SECS:-1}
COUNT_SECS=${COUNT_SECS:-2}
CONNS=${CONNS:-50}
PYTHON=${PYTHON:-/usr/bin/python3}

make_workdir
declare -A WPID # per server: the process that serves
skip_without wrk python

# ---- build: the library and the extension from the CMake tree, the C server by hand ----
build_library cymg_static cymg_python cymg_python_files
bin="$BUILD/bench/http"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_cymg" "$root/bench/http/hello_cymg.c"
pin_cpus

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
  local port='' ok=''
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
  [ -n "$ok" ] || { server_failed "$name" "did not start or did not answer hello"; return 1; }
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
start cymongoose_asgi print "$PYTHON" serve_cymongoose_asgi.py 0 hello_asgi:app &&
  configs+=("cymongoose.asgi (raw ASGI)|cymongoose_asgi")
if have uvicorn; then
  http_impl=h11
  have httptools && http_impl=httptools
  p=$(free_port)
  start uvicorn "$p" "$PYTHON" -m uvicorn --host 127.0.0.1 --port "$p" --workers 1 \
    --http "$http_impl" --loop asyncio --no-access-log --log-level warning hello_asgi:app &&
    configs+=("uvicorn (raw ASGI, $http_impl, asyncio loop)|uvicorn")
else skipped+=("uvicorn (python3-uvicorn)"); fi
if have starlette; then
  start cymongoose_asgi_starlette print "$PYTHON" serve_cymongoose_asgi.py 0 hello_starlette:app &&
    configs+=("cymongoose.asgi (Starlette)|cymongoose_asgi_starlette")
  if have uvicorn; then
    p=$(free_port)
    start uvicorn_starlette "$p" "$PYTHON" -m uvicorn --host 127.0.0.1 --port "$p" --workers 1 \
      --http "$http_impl" --loop asyncio --no-access-log --log-level warning hello_starlette:app &&
      configs+=("uvicorn (Starlette, $http_impl, asyncio loop)|uvicorn_starlette")
  fi
else skipped+=("starlette (python3-starlette)"); fi
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
  cpu_window_start "$pid"
  run_wrk "$server" "$work/wrk.out" || true
  cpu_window_end "$pid"
  wrk_result "$work/wrk.out" >>"$work/res.$i"
}

load_before=$(load_average)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r _ s <<<"${configs[$i]}"
    measure "$i" "$s"
  done
done

# ---- syscalls per request of the two libcymg servers (the C one and the binding) ----
choose_counter
declare -A SYS
for s in cymg cymongoose; do
  SYS[$s]="n/a"
  [ "$count_with" = none ] && continue
  counter_attach "${WPID[$s]}" "$work/count.$s" recvfrom read sendto write epoll_wait
  run_wrk "$s" "$work/wrk.count" "$COUNT_SECS" || true
  counter_detach
  reqs=$(wrk_requests "$work/wrk.count")
  counts=$(counter_counts "$work/count.$s")
  SYS[$s]=$(awk -v n="${reqs:-0}" '{ c[$1] = $2 + 0 } END { if (!n) { print "n/a"; exit }
    printf "%.2f, %.2f, %.2f; %.2f\n", (c["recvfrom"] + c["read"]) / n, (c["sendto"] + c["write"]) / n,
      c["epoll_wait"] / n, c["total"] / n }' <<<"$counts")
done
load_after=$(load_average)

stats() { quiet_stats 4 2 3 +5 6 7 <"$work/res.$1"; }

declare -A MED QMED NQ CPU
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s <<<"${configs[$i]}"
  read -r med best qmed nq _ cpu _ <<<"$(stats "$i")"
  MED[$s]=$med QMED[$s]=$qmed NQ[$s]=$nq CPU[$s]=$cpu
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
  qcell=$(quiet_cell "$qmed" "$nq")
  rr="" rc=""
  if [ "$s" != cymongoose ]; then
    read -r a b <<<"$(pick cymongoose "$s")"
    rr=$(ratio "$a" "$b")
    rc=$(ratio "$cpu" "${CPU[cymongoose]}")
  fi
  [ "$errs" -gt 0 ] && name="$name ($errs errors)"
  echo "| $name | $med | $qcell | $best | $rr | $rc | $(latency "$p99") | $(micros "$cpu") | $spct%, $wpct% |"
done
echo
if [ -n "${QMED[aiohttp]:-}" ]; then
  read -r a b <<<"$(pick cymongoose aiohttp)"
  r=$(ratio "$a" "$b")
  echo "- Target cymongoose ≥ 3x aiohttp req/s: $r — $(met "$r" 3)."
fi
# The ASGI adapter against uvicorn, same app each (rate, then per server CPU-second).
for pair in "cymongoose_asgi uvicorn raw ASGI" "cymongoose_asgi_starlette uvicorn_starlette Starlette"; do
  read -r ours theirs what <<<"$pair"
  [ -n "${MED[$ours]:-}" ] && [ -n "${MED[$theirs]:-}" ] || continue
  read -r a b <<<"$(pick "$ours" "$theirs")"
  r=$(ratio "$a" "$b")
  rcpu=$(ratio "${CPU[$theirs]}" "${CPU[$ours]}")
  goal=""
  [ "$ours" = cymongoose_asgi ] && goal=" (target ≥ 2x: $(met "$r" 2))"
  echo "- cymongoose.asgi ÷ uvicorn, $what: $r req/s$goal; per server CPU-second: $rcpu."
done
read -r a b <<<"$(pick cymongoose cymg)"
r=$(ratio "$a" "$b")
rcpu=$(ratio "${CPU[cymg]}" "${CPU[cymongoose]}")
echo "- Target cymongoose ≥ 70% of libcymg C req/s: $r — $(met "$r" 0.7)" \
  "on throughput; per server CPU-second (C µs/req ÷ cymongoose µs/req): $rcpu — $(met "$rcpu" 0.7)."
echo "- System calls per request ($count_with, one more ${COUNT_SECS}s session): recv, send, epoll_wait; all —" \
  "libcymg C: ${SYS[cymg]}; cymongoose: ${SYS[cymongoose]}."
echo
echo "Each run, req/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ <<<"${configs[$i]}"
  echo "- $name: $(each_run 1 4 <"$work/res.$i")"
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
printf '%s\n' "${cc_cmds[@]}" | sed "s|$root/||g"
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s <<<"${configs[$i]}"
  echo "${srv_pin[*]} ${CMD[$s]}"
done | sed -e "s|$root/||g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' -e 's|--port [0-9]*|--port PORT|'
echo "PYTHONPATH=$(realpath --relative-to="$root" "$BUILD")/python for the cymongoose server"
printf '%s\n' "${commands[@]}" | sed -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | unique
echo '```'
