#!/usr/bin/env bash
# WSGI servers: cymongoose.wsgi against gunicorn (sync worker, and gthread),
# one worker process each, with the same two applications: a raw WSGI hello
# (hello_wsgi.py) and a Flask hello (hello_flask.py), all in the same run.
# Every server answers GET / with the 5-byte body "hello"; wrk -t1 -c50 with
# keep-alive drives each in turn. Prints a markdown table.
#
# Knobs (environment): RUNS (7) runs of SECS (2) seconds per configuration,
# interleaved, median reported; CONNS (50); THREADS (4): cymongoose.wsgi
# workers and gunicorn gthread threads; BUILD, SERVER_CPU, CLIENT_CPU,
# QUIET_PCT as in bench/lib.sh; PYTHON (/usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
RUNS=${RUNS:-7}
SECS=${SECS:-2}
CONNS=${CONNS:-50}
THREADS=${THREADS:-4}
PYTHON=${PYTHON:-/usr/bin/python3}

make_workdir
skip_without wrk "python WSGI"
skip_without gunicorn "python WSGI"
build_library cymg_python cymg_python_files
pin_cpus
gun=$(command -v gunicorn)
declare -A WPID

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD...: a server on a free port (PORT in CMD is replaced by it),
# pinned to the server CPU; waits until it answers "hello".
start() {
  local name=$1 port
  shift
  port=$(free_port)
  local cmd=("${srv_pin[@]}" "${@//PORT/$port}")
  (cd "$here" && PYTHONPATH="$BUILD/python" exec "${cmd[@]}") >"$work/$name.out" 2>"$work/$name.err" &
  PID[$name]=$!
  CMD[$name]="${*//PORT/N}"
  for _ in $(seq 300); do
    [ "$(curl -fs "http://127.0.0.1:$port/" 2>/dev/null)" = hello ] && break
    kill -0 "${PID[$name]}" 2>/dev/null || { server_failed "$name" "exited"; return 1; }
    sleep 0.05
  done
  PORT[$name]=$port
  # The process whose CPU time counts: gunicorn's worker, else the server.
  WPID[$name]=${PID[$name]}
  case "$name" in gunicorn*) WPID[$name]=$(pgrep -P "${PID[$name]}" | head -1) ;; esac
}

configs=()
for app in wsgi flask; do
  start "cymongoose_$app" "$PYTHON" serve_wsgi.py "hello_$app:app" PORT "$THREADS" &&
    configs+=("cymongoose.wsgi, $THREADS workers ($app)|cymongoose_$app|$app")
  start "gunicorn_sync_$app" "$PYTHON" "$gun" --workers 1 --worker-class sync \
    --bind 127.0.0.1:PORT --log-level warning "hello_$app:app" &&
    configs+=("gunicorn sync ($app)|gunicorn_sync_$app|$app")
  start "gunicorn_gthread_$app" "$PYTHON" "$gun" --workers 1 --worker-class gthread \
    --threads "$THREADS" --bind 127.0.0.1:PORT --log-level warning "hello_$app:app" &&
    configs+=("gunicorn gthread, $THREADS threads ($app)|gunicorn_gthread_$app|$app")
done

load_before=$(load_average)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r _ s _ <<<"${configs[$i]}"
    cpu_window_start "${WPID[$s]}"
    timeout $((SECS + 30)) "${cli_pin[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency \
      "http://127.0.0.1:${PORT[$s]}/" >"$work/wrk.out" 2>&1 || true
    cpu_window_end "${WPID[$s]}"
    wrk_result "$work/wrk.out" >>"$work/res.$i"
  done
done
load_after=$(load_average)

declare -A MED CPU
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s _ <<<"${configs[$i]}"
  read -r med _ _ _ _ cpu _ <<<"$(quiet_stats 4 2 3 +5 6 7 <"$work/res.$i")"
  MED[$s]=$med CPU[$s]=$cpu
done

echo "### python WSGI: cymongoose.wsgi vs gunicorn, one process each, wrk -t1 -c$CONNS keep-alive, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved ($(($(date +%s) - t_start)) s in all); servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type. $("$PYTHON" -V 2>&1);" \
  "$(gunicorn --version 2>/dev/null | sed 's/[()]//g')," \
  "Flask $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("flask"))' 2>/dev/null)."
echo
echo "| server (app) | req/s (median of all runs) | best | cymongoose.wsgi ÷ this, req/s | ÷ this, req per server CPU-s | p99 latency | server CPU µs/req | CPU busy: server, wrk |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for i in "${!configs[@]}"; do
  IFS='|' read -r name s app <<<"${configs[$i]}"
  read -r med best _ _ p99 cpu errs spct wpct <<<"$(quiet_stats 4 2 3 +5 6 7 <"$work/res.$i")"
  rr="" rc=""
  if [ "$s" != "cymongoose_$app" ]; then
    rr=$(ratio "${MED[cymongoose_$app]}" "$med")
    rc=$(ratio "$cpu" "${CPU[cymongoose_$app]}")
  fi
  [ "$errs" -gt 0 ] && name="$name ($errs errors)"
  echo "| $name | $med | $best | $rr | $rc | $(latency "$p99") | $(micros "$cpu") | $spct%, $wpct% |"
done
echo
best_gun=$(awk -v a="${MED[gunicorn_sync_wsgi]:-0}" -v b="${MED[gunicorn_gthread_wsgi]:-0}" \
  'BEGIN { print (a > b ? a : b) }')
r=$(ratio "${MED[cymongoose_wsgi]:-0}" "$best_gun")
echo "- Target cymongoose.wsgi ≥ 2x the faster gunicorn on the raw app (req/s): $r — $(met "$r" 2)."
echo
echo "Each run, req/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ _ <<<"${configs[$i]}"
  echo "- $name: $(each_run 1 4 <"$work/res.$i")"
done
echo
echo "gunicorn's sync worker closes the connection after every reply (wrk reconnects)."
echo "Server CPU is user + system time of the serving process (gunicorn: its worker)."
echo
echo "Command lines (in bench/python, PYTHONPATH=BUILD/python):"
echo
echo '```'
for i in "${!configs[@]}"; do
  IFS='|' read -r _ s _ <<<"${configs[$i]}"
  echo "${srv_pin[*]} ${CMD[$s]}" | sed "s|$root/||g"
done
echo "${cli_pin[*]} wrk -t1 -c$CONNS -d${SECS}s --latency http://127.0.0.1:N/"
echo '```'
