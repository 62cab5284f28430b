#!/usr/bin/env bash
# HTTPS server: libcymg (hello_tls_cymg.c) against nginx-light in the same run,
# each with the same certificate, one process (nginx: one worker) each, on the
# server CPU. For an ECDSA P-256 and an RSA 2048 certificate: wrk over TLS with
# 50 keep-alive connections ("hello"), then 50 connections that each carry one
# request, each a full TLS handshake: handshake_load.c, as wrk -H "Connection:
# close" resumes its sessions (it keeps an SSL per connection slot). Then
# memory per idle TLS connection:
# the server's RSS before and after IDLE connections have each done a handshake
# and one request and sit idle (bench/idle.py holds them; lib.sh idle_bytes), divided by IDLE.
#
# Knobs (environment): RUNS (5) runs of SECS (1) seconds per configuration,
# interleaved, median reported; CONNS (50); IDLE (1000) idle connections;
# QUIET_PCT (10); SERVER_CPU (0), CLIENT_CPU (1); BUILD (build); NGINX.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
RUNS=${RUNS:-5}
SECS=${SECS:-1}
CONNS=${CONNS:-50}
IDLE=${IDLE:-1000}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
PY=${PY:-/usr/bin/python3}

make_workdir
skip_without wrk tls
skip_without openssl tls

build_library cymg_static
bin="$BUILD/bench/tls"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_tls_cymg" "$here/hello_tls_cymg.c"
compile_program --libcymg "$bin/handshake_load" "$here/handshake_load.c" # for -lssl
pin_cpus

# The certificates, self-signed for 127.0.0.1 (wrk does not verify).
chmod 755 "$work"
for k in ec rsa; do
  case $k in
    ec) alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) alg=(-newkey rsa:2048) ;;
  esac
  openssl req -x509 "${alg[@]}" -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/$k.key" -out "$work/$k.crt" 2>/dev/null
  chmod a+r "$work/$k.key" "$work/$k.crt"
  start_server "cymg-$k" "$bin/hello_tls_cymg" 0 "$work/$k.crt" "$work/$k.key" || exit 1
done
commands=("${CMD[cymg-ec]}" "${CMD[cymg-rsa]}")

# nginx: per certificate one master with one worker (so each has its own
# memory to measure), configured as hello_tls_cymg: "hello", TLS 1.2 and 1.3.
declare -A NGX_WORKER
start_nginx() { # KEY
  local k=$1 d="$work/nginx-$1" port w=''
  mkdir -p "$d"
  port=$((20000 + RANDOM % 40000))
  {
    echo "worker_processes 1; daemon off; master_process on; pid $d/nginx.pid;"
    echo "error_log $d/error.log warn;"
    # nginx closes idle keep-alive connections once fewer than 1/16 of its
    # connection slots are free (512 of 10,000 held were closed): room above that.
    echo "events { worker_connections $((IDLE * 17 / 16 + CONNS + 100)); }"
    echo "worker_rlimit_nofile $((IDLE * 17 / 16 + CONNS + 200));"
    echo "http { access_log off; keepalive_requests 1000000; keepalive_timeout 3600s; default_type text/plain;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $d/$t;"; done
    echo "  server { listen 127.0.0.1:$port ssl;"
    echo "    ssl_certificate $work/$k.crt; ssl_certificate_key $work/$k.key;"
    echo "    ssl_protocols TLSv1.2 TLSv1.3;"
    echo "    location / { return 200 \"hello\"; } } }"
  } >"$d/nginx.conf"
  local cmd=("${srv_pin[@]}" "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log")
  "${cmd[@]}" >"$d/out" 2>&1 &
  PID[nginx-$k]=$!
  for _ in $(seq 100); do
    kill -0 "${PID[nginx-$k]}" 2>/dev/null || break
    w=$(pgrep -P "${PID[nginx-$k]}" | head -1 || true)
    [ -n "$w" ] && curl -kfs "https://127.0.0.1:$port/" >/dev/null 2>&1 && break
    w=''
    sleep 0.05
  done
  if [ -z "$w" ]; then
    kill "${PID[nginx-$k]}" 2>/dev/null || true
    unset "PID[nginx-$k]"
    echo "nginx did not start:" >&2
    cat "$d/out" "$d/error.log" >&2 2>/dev/null || true
    return 1
  fi
  PORT[nginx-$k]=$port NGX_WORKER[nginx-$k]=$w
  commands+=("${cmd[*]}")
}
# A random port may be taken: a few tries each.
nginx_tries() { local _; for _ in 1 2 3 4 5; do start_nginx "$1" 2>"$work/nginx-$1.err" && return 0; done; cat "$work/nginx-$1.err" >&2; return 1; }
have_nginx=false
if [ -x "$NGINX" ] && nginx_tries ec && nginx_tries rsa; then have_nginx=true; fi

servers=(cymg-ec cymg-rsa)
$have_nginx && servers+=(nginx-ec nginx-rsa)
for s in "${servers[@]}"; do
  body=$(curl -kfs --tlsv1.3 "https://127.0.0.1:${PORT[$s]}/" || true)
  [ "$body" = hello ] || { echo "$s answered '$body'" >&2; exit 1; }
done
pid_of() { case $1 in nginx*) echo "${NGX_WORKER[$1]}" ;; *) echo "${PID[$1]}" ;; esac; }

load_before=$(load_average)
# ---- memory per idle TLS connection, first, while each server is fresh (a
# process reuses the memory of connections it had before) ----
declare -A IDLE_B
for s in "${servers[@]}"; do
  IDLE_B[$s]=$(idle_bytes "$(pid_of "$s")" "${PORT[$s]}" "$IDLE" tls)
done
# ---- throughput and CPU per request ----
configs=()
for k in ec rsa; do
  for m in ka close; do
    configs+=("cymg-$k|$m")
    $have_nginx && configs+=("nginx-$k|$m")
  done
done
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r s m <<<"${configs[$i]}"
    if [ "$m" = ka ]; then
      wcmd=("${cli_pin[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "https://127.0.0.1:${PORT[$s]}/")
    else
      wcmd=("${cli_pin[@]}" "$bin/handshake_load" "${PORT[$s]}" "$CONNS" "$SECS")
    fi
    commands+=("$(printf '%q ' "${wcmd[@]}")")
    pid=$(pid_of "$s")
    cpu_window_start "$pid"
    timeout $((SECS + 30)) "${wcmd[@]}" >"$work/wrk.out" 2>&1 || true
    cpu_window_end "$pid"
    wrk_result "$work/wrk.out" >>"$work/res.$i"
  done
done

load_after=$(load_average)

# ---- tables ----
stats() { quiet_stats 4 2 3 +5 6 7 <"$work/res.$1"; }
declare -A MED CPU
for i in "${!configs[@]}"; do
  IFS='|' read -r s m <<<"${configs[$i]}"
  read -r med _ _ _ _ cpu _ <<<"$(stats "$i")"
  MED[$s.$m]=$med CPU[$s.$m]=$cpu
done
echo "### tls: libcymg vs nginx-light over HTTPS, $CONNS connections, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration, interleaved; servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after: $load_after. Build: $build_type. nginx: $($have_nginx && "$NGINX" -v 2>&1 | sed 's/.*: //' || echo 'not installed'). $(openssl version)."
echo
echo "| configuration | req/s (median) | quiet runs: median (n) | best | server CPU µs/req | cymg/nginx: requests per server CPU-second | cymg/nginx: median rate | p99 | CPU busy: server, wrk |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in "${!configs[@]}"; do
  IFS='|' read -r s m <<<"${configs[$i]}"
  read -r med best qmed nq p99 cpu errs spct wpct <<<"$(stats "$i")"
  name="${s%%-*}, ${s#*-} $([ "$m" = ka ] && echo keep-alive || echo 'handshake per request')"
  [ "$errs" -gt 0 ] && name="$name ($errs errors)"
  eff='' rate=''
  if [ "${s%%-*}" = cymg ] && $have_nginx; then
    n="nginx-${s#*-}.$m"
    eff=$(ratio "${CPU[$n]}" "$cpu") rate=$(ratio "$med" "${MED[$n]}")
  fi
  echo "| $name | $med | $(quiet_cell "$qmed" "$nq") | $best | $(micros "$cpu") | $eff | $rate | $(latency "$p99") | $spct%, $wpct% |"
done
echo
echo "Keep-alive: wrk -t1 -c$CONNS. Handshake per request: handshake_load (a fresh SSL per"
echo "connection, no session cache: every request a full handshake, TLS 1.3, X25519)."
echo
echo "Memory per idle TLS connection ($IDLE connections, each after a handshake and one"
echo "keep-alive request; server RSS after minus before, divided by the connections):"
echo
echo "| server | bytes per idle connection |"
echo "|---|---:|"
for s in "${servers[@]}"; do echo "| ${s%%-*}, ${s#*-} | ${IDLE_B[$s]} |"; done
echo
echo "Command lines (ports chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmds[@]}"
printf '%s\n' "${commands[@]}" | sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | unique
echo '```'
