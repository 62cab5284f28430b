#!/usr/bin/env bash
# DNS lookups per second: libcymg's resolver against c-ares, in the same run,
# both asking a local dnsmasq (127.0.0.1, a free port, NAMES --host-record
# names h0.test ...) with INFLIGHT lookups outstanding. Uncached: libcymg's
# cache flushed before every lookup, c-ares has none. Cached: libcymg only
# (c-ares has no cache to compare with), and a cached-only run under strace to
# show a cached lookup makes no system call. Prints a markdown table.
#
# Knobs (environment): RUNS (5) per configuration, the median is reported;
# LOOKUPS (20000) per run; NAMES (256); INFLIGHT (64); SERVER_CPU, CLIENT_CPU,
# BUILD, CC as in bench/lib.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
RUNS=${RUNS:-5}
LOOKUPS=${LOOKUPS:-20000}
NAMES=${NAMES:-256}
INFLIGHT=${INFLIGHT:-64}

skip_without dnsmasq "DNS lookups"
[ -f /usr/include/ares.h ] || { echo "### DNS lookups: skipped (libc-ares-dev is not installed: scripts/deps.sh bench)"; exit 0; }
make_workdir

build_library cymg_static
bin="$BUILD/bench/dns"
mkdir -p "$bin"
compile_program --libcymg "$bin/lookup_cymg" "$here/lookup_cymg.c"
cares_cmd=("$CC" "${CFLAGS[@]}" -o "$bin/lookup_cares" "$here/lookup_cares.c" -lcares)
"${cares_cmd[@]}"
cc_cmds+=("${cares_cmd[*]}")
pin_cpus

# dnsmasq on a free port: it may lose the port between the probe and its bind,
# then it exits and another port is tried.
records=()
for ((i = 0; i < NAMES; i++)); do records+=("--host-record=h$i.test,127.0.0.$((i % 250 + 1))"); done
port=
for _ in 1 2 3 4 5; do
  p=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${srv_pin[@]}" dnsmasq --no-resolv --no-hosts --keep-in-foreground --port="$p" \
    --listen-address=127.0.0.1 --bind-interfaces --pid-file= --user="$(id -un)" \
    --local-ttl=600 --log-facility=/dev/null "${records[@]}" 2>"$work/dnsmasq.err" &
  PID[dnsmasq]=$!
  for _ in $(seq 50); do
    "$bin/lookup_cymg" "$p" 1 1 1 uncached >/dev/null 2>&1 && { port=$p; break; }
    kill -0 "${PID[dnsmasq]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill "${PID[dnsmasq]}" 2>/dev/null || true
  unset "PID[dnsmasq]"
done
[ -n "$port" ] || { echo "dnsmasq did not start:" >&2; cat "$work/dnsmasq.err" >&2; exit 1; }

# median of the "rate N" lines of RUNS runs of a command
median_rate() {
  local r=()
  for ((k = 0; k < RUNS; k++)); do
    r+=("$("${cli_pin[@]}" "$@" | awk '$1 == "rate" && $4 == 0 { print $2 }')")
  done
  printf '%s\n' "${r[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : 0) }'
}
load0=$(load_average)
# Alternating the two, run by run, would share the load better; a median of a
# few runs each is what fits in a short session.
cymg_unc=$(median_rate "$bin/lookup_cymg" "$port" "$NAMES" "$LOOKUPS" "$INFLIGHT" uncached)
cares_unc=$(median_rate "$bin/lookup_cares" "$port" "$NAMES" "$LOOKUPS" "$INFLIGHT")
cymg_hit=$(median_rate "$bin/lookup_cymg" "$port" "$NAMES" $((LOOKUPS * 10)) "$INFLIGHT" cached)

# System calls of a cached-only run: the NAMES first lookups fill the cache,
# then HITS more are answered from it.
hits=$((LOOKUPS * 10))
strace -c -f -o "$work/strace" "$bin/lookup_cymg" "$port" "$NAMES" "$hits" "$INFLIGHT" cached >/dev/null
read -r sc_socket sc_sendto sc_recvfrom sc_total < <(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { c[$NF] = $4 }
  END { print c["socket"] + 0, c["sendto"] + c["sendmsg"] + 0, c["recvfrom"] + c["recvmsg"] + 0, c["total"] + 0 }' "$work/strace")

echo "### DNS lookups per second ($LOOKUPS lookups, $INFLIGHT in flight, $NAMES names, dnsmasq on 127.0.0.1, median of $RUNS runs)"
echo
echo "| Configuration | lookups/s | vs c-ares uncached |"
echo "|---|---:|---:|"
echo "| c-ares $(pkg-config --modversion libcares 2>/dev/null || echo '?'), uncached (no cache) | $cares_unc | 1.00 |"
echo "| libcymg, uncached (cache flushed before each lookup) | $cymg_unc | $(ratio "$cymg_unc" "$cares_unc") |"
echo "| libcymg, cached ($((LOOKUPS * 10)) lookups) | $cymg_hit | $(ratio "$cymg_hit" "$cares_unc") |"
echo
echo "Goal, libcymg uncached at least c-ares's rate: $(met "$(ratio "$cymg_unc" "$cares_unc")" 1)."
echo "Cached-only run under \`strace -c -f\` ($NAMES lookups to fill the cache, then $hits from it):"
echo "socket $sc_socket, sendto/sendmsg $sc_sendto, recvfrom/recvmsg $sc_recvfrom, all system calls $sc_total"
echo "($(ratio "$sc_total" "$hits" 3) per cached lookup; the sends and receives are the fill's, not the hits')."
echo "Load average: $load0 at start, $(load_average) at end. dnsmasq on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU${srv_pin[*]:+ (taskset)}."
echo
echo "Built with:"
printf '    %s\n' "${cc_cmds[@]}"
