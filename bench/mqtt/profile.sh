#!/usr/bin/env bash
# Where an MQTT broker spends its work, for the broker's developers: not a
# benchmark (bench/run.sh does not run it: it is not run.sh) but the profile
# behind one. For libcymg's broker_cymg and, for comparison, mosquitto, under
# the load of bench/mqtt/mqtt_load.c (QoS 1 one to one, QoS 0 one to 100):
#
#   - instructions per delivered message in user space (callgrind: exact,
#     whatever else the machine runs), and callgrind's top functions;
#   - heap allocations per delivered message (perf uprobes on libc's malloc,
#     calloc, realloc, free; the probes are removed at the end if this script
#     added them);
#   - perf record -g of broker_cymg at full speed: the hottest symbols, kernel
#     included;
#   - massif on broker_cymg holding IDLE idle clients: heap bytes per client
#     and the allocation sites they come from.
#
# Knobs: SECS (2) per session; IDLE (1000); WINDOW (50); BUILD (build);
# PARTS ("callgrind allocs perf massif"); MOSQUITTO.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
# shellcheck source=bench/mqtt/mosquitto.sh
. "$here/mosquitto.sh"
SECS=${SECS:-2}
IDLE=${IDLE:-1000}
WINDOW=${WINDOW:-50}
PARTS=${PARTS:-callgrind allocs perf massif}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}

make_workdir
ulimit -n "$(ulimit -Hn)"
build_library cymg_static
bin="$BUILD/bench/mqtt"
mkdir -p "$bin"
compile_program --libcymg "$bin/mqtt_load" "$here/mqtt_load.c"
CFLAGS+=(-g)
compile_program --libcymg "$bin/broker_cymg" "$here/broker_cymg.c"
pin_cpus
load=("${cli_pin[@]}" "$bin/mqtt_load")
configs=("1 1 1" "0 1 100") # qos pubs subs

free_port() { echo $((20000 + RANDOM % 40000)); }
port_of() { # NAME PID: the port the server printed
  wait_for_port "$work/$1.out" "$2"
}
# deliveries FILE: total_delivered from a mqtt_load output line.
deliveries() { awk '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); if (kv[1] == "total_delivered") print kv[2] } }' "$1"; }

# start NAME WRAPPER...: broker NAME (cymg or mosquitto) under WRAPPER (may be
# empty), on the server CPU; sets bpid and bport.
start() {
  local name=$1
  shift
  if [ "$name" = cymg ]; then
    "${srv_pin[@]}" "$@" "$bin/broker_cymg" 0 >"$work/$name.out" 2>"$work/$name.err" &
    bpid=$!
    bport=$(port_of "$name" "$bpid")
  else
    bport=$(free_port)
    mosquitto_conf "$bport" "$work/mosquitto.conf"
    "${srv_pin[@]}" "$@" "$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/$name.out" 2>"$work/$name.err" &
    bpid=$!
    wait_listening "$bport" "$bpid" || bport=''
    sleep 1 # the listener is up; under valgrind the rest may still be loading
  fi
  PID[$name]=$bpid
  [ -n "$bport" ] || { cat "$work/$name.err" >&2; exit 1; }
}
stop() { # NAME
  kill -TERM "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  unset "PID[$1]"
}

echo "## MQTT broker profile, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(load_average)"
for part in $PARTS; do
  case $part in
    callgrind)
      echo
      echo "### User-space instructions per delivered message (callgrind)"
      for b in cymg mosquitto; do
        for cfg in "${configs[@]}"; do
          read -r q p s <<<"$cfg"
          start "$b" valgrind --tool=callgrind --callgrind-out-file="$work/cg.$b.%p"
          sleep 1
          "${load[@]}" run "$bport" -q "$q" -p "$p" -s "$s" -w "$WINDOW" -t "$SECS" >"$work/load.out" 2>&1 || cat "$work/load.out" >&2
          stop "$b"
          f=$(find "$work" -maxdepth 1 -name "cg.$b.*" | head -1)
          m=$(deliveries "$work/load.out")
          ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1 }')
          echo
          echo "$b, QoS $q, 1 to $s: $(awk -v i="$ir" -v m="$m" 'BEGIN { printf "%.0f", m ? i / m : 0 }') instructions per delivered message ($ir over $m deliveries, startup included)"
          if [ "$b" = cymg ]; then
            echo
            echo '```'
            callgrind_annotate --inclusive=no "$f" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '3,22p' | cut -c1-150
            echo '```'
          fi
          rm -f "$f"
        done
      done
      ;;
    allocs)
      echo
      echo "### Heap calls per delivered message (perf uprobes on libc)"
      libc=$(ldd "$bin/broker_cymg" | awk '/libc.so/ { print $3 }')
      added=()
      for fn in malloc calloc realloc free; do
        if ! perf probe -l 2>/dev/null | grep -q "probe_libc:$fn "; then
          perf probe -q -x "$libc" -a "$fn" >/dev/null 2>&1 && added+=("probe_libc:$fn")
        fi
      done
      for b in cymg mosquitto; do
        for cfg in "${configs[@]}"; do
          read -r q p s <<<"$cfg"
          start "$b"
          perf stat -x, -o "$work/allocs.out" -e probe_libc:malloc,probe_libc:calloc,probe_libc:realloc,probe_libc:free -p "$bpid" &
          counter_pid=$!
          sleep 0.5
          "${load[@]}" run "$bport" -q "$q" -p "$p" -s "$s" -w "$WINDOW" -t "$SECS" >"$work/load.out" 2>&1 || cat "$work/load.out" >&2
          kill -INT "$counter_pid"
          wait "$counter_pid" || true
          counter_pid=
          stop "$b"
          m=$(deliveries "$work/load.out")
          echo "- $b, QoS $q, 1 to $s: $(awk -F, -v m="$m" '$3 ~ /probe_libc/ { sub(/probe_libc:/, "", $3); printf "%s %.2f, ", $3, m ? $1 / m : 0 }' "$work/allocs.out")per delivery ($m deliveries)"
        done
      done
      for ev in "${added[@]}"; do perf probe -q -d "$ev" >/dev/null 2>&1 || true; done
      ;;
    perf)
      echo
      echo "### perf record -g, broker_cymg at full speed"
      for cfg in "${configs[@]}"; do
        read -r q p s <<<"$cfg"
        start cymg
        perf record -q -g -o "$work/perf.data" -p "$bpid" 2>/dev/null &
        counter_pid=$!
        sleep 0.5
        "${load[@]}" run "$bport" -q "$q" -p "$p" -s "$s" -w "$WINDOW" -t "$SECS" -P "$bpid" >"$work/load.out" 2>&1 || cat "$work/load.out" >&2
        kill -INT "$counter_pid"
        wait "$counter_pid" || true
        counter_pid=
        stop cymg
        echo
        echo "QoS $q, 1 to $s: $(cat "$work/load.out")"
        echo
        echo '```'
        perf report -i "$work/perf.data" --no-children --percent-limit 1.5 --stdio -g none 2>/dev/null |
          grep -v '^#' | grep -v '^$' | head -30 | cut -c1-120
        echo '```'
      done
      ;;
    massif)
      echo
      echo "### Heap of broker_cymg with $IDLE idle clients (massif)"
      start cymg valgrind --tool=massif --threshold=2 --vgdb=yes --massif-out-file="$work/massif.out"
      sleep 1
      # The clients stay until the snapshot is taken: -H 1 holds them until
      # their standard input (the fifo) closes.
      mkfifo "$work/hold"
      "${load[@]}" idle "$bport" "$IDLE" -P "$bpid" -H 1 <"$work/hold" >"$work/idle.out" 2>&1 &
      idle_pid=$!
      exec {hold_fd}>"$work/hold"
      for _ in $(seq 600); do [ -s "$work/idle.out" ] && break; sleep 0.1; done
      vgdb --pid="$bpid" detailed_snapshot "$work/snap.out" >/dev/null 2>&1 || true
      exec {hold_fd}>&-
      wait "$idle_pid" || cat "$work/idle.out" >&2
      stop cymg
      echo
      echo "$(cat "$work/idle.out") (RSS under valgrind)"
      echo
      echo '```'
      "$here/massif_peak.py" "$work/snap.out" "$IDLE" 3 | head -60
      echo '```'
      ;;
  esac
done
