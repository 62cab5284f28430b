#!/usr/bin/env bash
# Server user-space instructions per full TLS 1.3 handshake, libcymg against nginx-light,
# counted by valgrind's callgrind: a figure the machine's load does not move
# (bench/tls/run.sh's CPU-seconds swing by +-20% on a shared machine).
#
# Each server runs alone under callgrind (nginx: master_process off, one
# process); handshake_load drives CONNS connections, each a full handshake and
# one request, for SHORT and then LONG seconds in two separate runs; the
# difference of the two programs' instruction totals over the difference of
# their request counts is the cost of one request, start-up and shutdown
# cancelled out. Knobs: SHORT (4), LONG (10), CONNS (4), BUILD (build), NGINX.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
SHORT=${SHORT:-4}
LONG=${LONG:-10}
CONNS=${CONNS:-4}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
command -v valgrind >/dev/null || { echo "instr.sh: valgrind is needed" >&2; exit 1; }

make_workdir
build_library cymg_static
bin="$BUILD/bench/tls"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_tls_cymg" "$here/hello_tls_cymg.c"
compile_program --libcymg "$bin/handshake_load" "$here/handshake_load.c" # for -lssl
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$work/ec.key" -out "$work/ec.crt" -days 2 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$work/rsa.key" -out "$work/rsa.crt" -days 2 2>/dev/null

nginx_conf() { # KEY PORT
  local d="$work/nginx-$1"
  mkdir -p "$d"
  {
    echo "worker_processes 1; daemon off; master_process off; pid $d/nginx.pid;"
    echo "error_log $d/error.log warn; events { worker_connections 256; }"
    echo "http { access_log off; default_type text/plain;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $d/$t;"; done
    echo "  server { listen 127.0.0.1:$2 ssl;"
    echo "    ssl_certificate $work/$1.crt; ssl_certificate_key $work/$1.key;"
    echo "    ssl_protocols TLSv1.2 TLSv1.3;"
    echo "    location / { return 200 \"hello\"; } } }"
  } >"$d/nginx.conf"
  echo "$d"
}

# One server under callgrind for SECS seconds of load: prints "REQUESTS IR".
measure() { # SERVER KEY SECS
  local port=$((20000 + RANDOM % 40000)) out="$work/cg.$1.$2.$3" cmd
  if [ "$1" = nginx ]; then
    local d
    d=$(nginx_conf "$2" "$port")
    cmd=("$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log")
  else
    cmd=("$bin/hello_tls_cymg" "$port" "$work/$2.crt" "$work/$2.key")
  fi
  valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local req
  req=$("$bin/handshake_load" "$port" "$CONNS" "$3" 2>&1 | awk '/requests in/ {print $1}')
  kill -TERM "$pid"
  wait "$pid" || true
  # the connection that probed the port is a request for neither: cancelled by the difference
  echo "$req $(awk '/^summary:/ {print $2}' "$out")"
}

echo "### tls: server instructions per full TLS 1.3 handshake (callgrind), 127.0.0.1"
echo
echo "handshake_load: $CONNS connections, a fresh SSL each (no resumption), one request per"
echo "handshake; runs of $SHORT s and $LONG s under valgrind; (Ir long - Ir short) / (requests long -"
echo "requests short). $(openssl version). nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')."
echo
echo "| certificate | libcymg instructions per handshake | nginx | nginx / libcymg |"
echo "|---|---:|---:|---:|"
for k in ec rsa; do
  declare -A per=()
  for s in cymg nginx; do
    read -r r1 i1 < <(measure "$s" "$k" "$SHORT")
    read -r r2 i2 < <(measure "$s" "$k" "$LONG")
    if [ -z "$r1" ] || [ -z "$r2" ] || [ "$r2" -le "$r1" ]; then
      echo "instr.sh: $s $k: no usable request counts ($r1, $r2)" >&2
      exit 1
    fi
    per[$s]=$(( (i2 - i1) / (r2 - r1) ))
  done
  awk -v k="$k" -v c="${per[cymg]}" -v n="${per[nginx]}" \
    'BEGIN { printf "| %s | %d | %d | %.3f |\n", k, c, n, n / c }'
done
