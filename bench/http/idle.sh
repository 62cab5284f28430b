#!/usr/bin/env bash
# Memory per idle keep-alive HTTP connection: libcymg's hello server
# (hello_cymg.c) against nginx-light (1 worker, bench/http/nginx.sh, the
# configuration run.sh measures) in the same run. For each server, fresh:
# its RSS (VmRSS) before and after IDLE connections have each completed one
# keep-alive request and sit idle (bench/idle.py holds them in a process of
# its own; lib.sh idle_bytes), divided by IDLE. The kernel's socket buffers
# are not in a process's RSS, so this is the user-space cost.
#
# Knobs (environment): IDLE (10000) connections; ROUNDS (3) measurements per
# server, each on a fresh server process, median reported; SERVER_CPU (0),
# CLIENT_CPU (1); BUILD (build); NGINX; PY (/usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
IDLE=${IDLE:-10000}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
PY=${PY:-/usr/bin/python3}
# nginx closes idle keep-alive connections once fewer than 1/16 of its slots are
# free: room above that, or some of the held ones are gone before RSS is read.
NGINX_CONNS=$((IDLE * 17 / 16 + 100))

make_workdir
# Servers and client each need IDLE descriptors and a few: the soft limit is
# raised for this script's children (the hard limit bounds it).
need=$((IDLE * 17 / 16 + 300))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "idle: the descriptor hard limit $hard is below the $need needed (IDLE=$IDLE)" >&2
  exit 1
fi
ulimit -Sn "$need"

build_library cymg_static
bin="$BUILD/bench/http"
mkdir -p "$bin"
compile_program --libcymg "$bin/hello_cymg" "$here/hello_cymg.c"
pin_cpus
chmod 755 "$work"
commands=()
# shellcheck source=bench/http/nginx.sh
. "$here/nginx.sh"

stop() { # NAME
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  unset "PID[$1]"
}

load_before=$(load_average)
declare -A RES
have_nginx=true
for ((r = 1; r <= ROUNDS; r++)); do
  start_server cymg "$bin/hello_cymg" 0 || exit 1
  [ "$r" = 1 ] && commands+=("${CMD[cymg]}")
  RES[cymg]+="$(idle_bytes "${PID[cymg]}" "${PORT[cymg]}" "$IDLE" plain)"$'\n'
  stop cymg
  if $have_nginx && start_nginx; then
    RES[nginx]+="$(idle_bytes "$nginx_worker" "${PORT[nginx]}" "$IDLE" plain)"$'\n'
    stop nginx
  else
    have_nginx=false
  fi
done
load_after=$(load_average)

median() { grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { if (!NR) print "n/a"; else print a[int((NR + 1) / 2)] }'; }
all() { grep -v '^$' | paste -sd' ' | sed 's/ /, /g'; }

echo "### http: memory per idle keep-alive connection, libcymg vs nginx-light"
echo
echo "$IDLE connections, each after one completed keep-alive request, held idle by"
echo "bench/idle.py; server RSS (VmRSS) after minus before, divided by the connections;"
echo "$ROUNDS rounds, each on fresh server processes. Load average before: $load_before,"
echo "after: $load_after. Build: $build_type. nginx: $($have_nginx && "$NGINX" -v 2>&1 | sed 's/.*: //' || echo 'not installed')."
echo
echo "| server | bytes per idle connection (median) | each round |"
echo "|---|---:|---|"
echo "| libcymg | $(median <<<"${RES[cymg]}") | $(all <<<"${RES[cymg]}") |"
$have_nginx && echo "| nginx | $(median <<<"${RES[nginx]}") | $(all <<<"${RES[nginx]}") |"
echo
echo "Command lines (ports chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmds[@]}"
printf '%s\n' "${commands[@]}" "${cli_pin[*]} $PY bench/idle.py PORT $IDLE plain" | sed -e "s|$work/|\$TMP/|g" -e 's|127.0.0.1:[0-9]*|127.0.0.1:PORT|g' | unique
echo '```'
