#!/usr/bin/env bash
# MQTT brokers: libcymg's (broker_cymg.c, the C API) against mosquitto (Debian)
# and aedes (npm, bench/mqtt/node, one Node process) in the same run, each
# broker one process pinned to the server CPU, the load generator
# (mqtt_load.c: epoll, raw sockets, libcymg's codec) on the other CPU.
#
# For QoS 0 and 1, one publisher to one subscriber and one publisher to 100
# subscribers, 64-byte messages, MQTT 3.1.1: a closed loop of WINDOW messages
# in flight end to end (mqtt_load.c says how), delivered messages per second
# at the subscribers, broker CPU-seconds (user + system from /proc/PID/stat
# over the timed part), messages per broker CPU-second, every message checked
# (lost, duplicated, corrupted). Runs are interleaved (per run: every
# configuration, on every broker in turn), median reported. Then one shorter
# session per configuration and broker with `perf stat` counting the broker's
# system calls (strace -c where perf cannot), divided by the messages
# delivered in it. Then memory per idle client: a fresh process of each
# broker, IDLE clients that each CONNECT and SUBSCRIBE once, (VmRSS after -
# before) / IDLE.
#
# Knobs (environment): RUNS (3) runs of SECS (2) seconds per configuration;
# QOS ("0 1"); TOPOLOGIES ("1:1 1:100", publishers:subscribers); WINDOWS ("1 50":
# messages in flight end to end, one configuration each: 1 is latency-bound,
# 50 lets a broker batch);
# SIZE (64); VERSIONS ("4"; "4 5" adds MQTT 5.0, which aedes does not speak);
# IDLE (10000, 0 skips); COUNT_SECS (1); QUIET_PCT (10); BROKERS ("cymg
# mosquitto aedes"); SERVER_CPU (0), CLIENT_CPU (1); BUILD (build);
# COUNT_WITH (perf, strace or none); MOSQUITTO; NODE.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
# shellcheck source=bench/mqtt/mosquitto.sh
. "$here/mosquitto.sh"
RUNS=${RUNS:-3}
SECS=${SECS:-2}
QOS=${QOS:-0 1}
TOPOLOGIES=${TOPOLOGIES:-1:1 1:100}
WINDOWS=${WINDOWS:-1 50}
SIZE=${SIZE:-64}
VERSIONS=${VERSIONS:-4}
IDLE=${IDLE:-10000}
COUNT_SECS=${COUNT_SECS:-1}
BROKERS=${BROKERS:-cymg mosquitto aedes}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
NODE=${NODE:-$(command -v node || true)}

make_workdir
# 10,000 idle clients need as many descriptors in the broker and the generator.
ulimit -n "$(ulimit -Hn)"

# ---- build ----
build_library cymg_static
bin="$BUILD/bench/mqtt"
mkdir -p "$bin"
compile_program --libcymg "$bin/mqtt_load" "$here/mqtt_load.c"
# The broker is built only when the library has it (it is being written in
# parallel with this benchmark).
have_cymg=false
rm -f "$bin/broker_cymg"
if grep -q cymg_mqtt_broker_new "$BUILD/libcymg.a" 2>/dev/null; then
  if compile_program --libcymg "$bin/broker_cymg" "$here/broker_cymg.c" 2>"$work/cc.err"; then :; fi
  if [ -x "$bin/broker_cymg" ]; then have_cymg=true; else cat "$work/cc.err" >&2; fi
fi
pin_cpus

# ---- the brokers: start_broker NAME [TAG] starts one, fresh; stop_broker ----
declare -A LABEL=([cymg]="libcymg broker_cymg.c" [mosquitto]="mosquitto" [aedes]="aedes")
notes=()
commands=()
start_mosquitto() { # NAME
  local name=$1 port d="$work/$1"
  mkdir -p "$d"
  port=$((20000 + RANDOM % 40000))
  mosquitto_conf "$port" "$d/mosquitto.conf"
  local cmd=("${srv_pin[@]}" "$MOSQUITTO" -c "$d/mosquitto.conf")
  "${cmd[@]}" >"$d/out" 2>&1 &
  PID[$name]=$!
  if wait_listening "$port" "${PID[$name]}"; then
    PORT[$name]=$port CMD[$name]="${cmd[*]}"
    return 0
  fi
  kill "${PID[$name]}" 2>/dev/null || true
  unset "PID[$name]"
  return 1
}
start_broker() { # NAME [SUFFIX]: the broker NAME as process NAME+SUFFIX
  local b=$1 name=$1${2:-} _
  case $b in
    cymg) start_server "$name" "$bin/broker_cymg" 0 ;;
    aedes) start_server "$name" "$NODE" "$here/node/aedes.mjs" 0 ;;
    mosquitto) for _ in 1 2 3 4 5; do start_mosquitto "$name" && return 0; done; return 1 ;;
  esac
}
stop_broker() { # NAME
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  unset "PID[$1]"
}

brokers=()
for b in $BROKERS; do
  case $b in
    cymg)
      if ! $have_cymg; then
        notes+=("libcymg's broker is not in this tree yet (no cymg_mqtt_broker_new in libcymg.a): its rows are left out.")
        continue
      fi ;;
    mosquitto)
      if [ ! -x "$MOSQUITTO" ]; then notes+=("mosquitto is not installed (Debian: mosquitto): its rows are left out."); continue; fi ;;
    aedes)
      if [ -z "$NODE" ]; then notes+=("node is not installed (Debian: nodejs): the aedes rows are left out."); continue; fi
      if [ ! -f "$here/node/node_modules/aedes/package.json" ]; then
        (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) ||
          { notes+=("npm ci in bench/mqtt/node failed: the aedes rows are left out."); continue; }
      fi ;;
    *) echo "unknown broker $b" >&2; exit 2 ;;
  esac
  start_broker "$b" || { notes+=("$b did not start: its rows are left out."); continue; }
  brokers+=("$b")
  commands+=("${CMD[$b]}")
done
[ "${#brokers[@]}" -gt 0 ] || { echo "no broker to measure" >&2; exit 1; }
case " ${brokers[*]} " in
  *" aedes "*) case " $VERSIONS " in *" 5 "*) notes+=("aedes speaks MQTT 3.1.1 only: it has no 5.0 rows.") ;; esac ;;
esac

# ---- configurations ----
configs=()
for v in $VERSIONS; do
  for q in $QOS; do
    for t in $TOPOLOGIES; do
      for w in $WINDOWS; do configs+=("$v|$q|$t|$w"); done
    done
  done
done
load_cmd() { # BROKER CONFIG SECS
  local v q t w
  IFS='|' read -r v q t w <<<"$2"
  echo "${cli_pin[*]} $bin/mqtt_load run ${PORT[$1]} -q $q -p ${t%%:*} -s ${t##*:} -w $w -z $SIZE -t $3 -V $v -P ${PID[$1]}"
}
applies() { # BROKER CONFIG: aedes speaks 3.1.1 only
  [ "$1" != aedes ] || [ "${2%%|*}" = 4 ]
}

# One timed session: appends "rate per_cpu others load_pct broker_pct latency
# lost dups errors failed" to $work/res.BROKER.CONFIG_INDEX.
measure() { # BROKER CONFIG_INDEX
  local b=$1 i=$2 cmd failed=0
  cmd=$(load_cmd "$b" "${configs[$i]}" "$SECS")
  commands+=("$cmd")
  # shellcheck disable=SC2086 # the command line is words
  timeout $((SECS + 60)) $cmd >"$work/load.out" 2>"$work/load.err" || failed=1
  if [ "$failed" = 1 ]; then
    echo "$b, ${configs[$i]}: mqtt_load failed:" >&2
    cat "$work/load.out" "$work/load.err" >&2
  fi
  awk -v failed="$failed" -v secs="$SECS" '
    { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] } }
    END {
      printf "%d %d %d %d %d %d %d %d %d %d\n", v["msgs_per_s"], v["msgs_per_broker_cpu_s"],
        v["others_pct"], v["load_cpu_pct"], v["seconds"] ? v["broker_cpu_s"] * 100 / v["seconds"] : 0,
        v["latency_us"], v["lost"], v["dups"], v["errors"], failed }' "$work/load.out" \
    >>"$work/res.$b.$i"
}

load_before=$(load_average)
t_start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  for i in "${!configs[@]}"; do
    for b in "${brokers[@]}"; do
      applies "$b" "${configs[$i]}" && measure "$b" "$i"
    done
  done
done

# ---- system calls per delivered message, one shorter session each ----
choose_counter
declare -A SYS
sys_names=(recvfrom sendto read write writev readv epoll_wait epoll_pwait epoll_ctl)
if [ "$count_with" != none ]; then
  for i in "${!configs[@]}"; do
    for b in "${brokers[@]}"; do
      applies "$b" "${configs[$i]}" || continue
      counter_attach "${PID[$b]}" "$work/count.out" "${sys_names[@]}"
      cmd=$(load_cmd "$b" "${configs[$i]}" "$COUNT_SECS")
      # shellcheck disable=SC2086
      timeout $((COUNT_SECS + 60)) $cmd >"$work/load.out" 2>&1 || true
      counter_detach
      msgs=$(awk '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); if (kv[1] == "total_delivered") print kv[2] } }' "$work/load.out")
      SYS[$b.$i]=$(counter_counts "$work/count.out" | awk -v m="${msgs:-0}" '
        { c[$1] = $2 }
        END {
          if (!m) { print "n/a"; exit }
          rd = c["recvfrom"] + c["read"] + c["readv"]; wr = c["sendto"] + c["write"] + c["writev"]
          wt = c["epoll_wait"] + c["epoll_pwait"]
          printf "%.2f (read %.2f, write %.2f, wait %.2f, ctl %.2f)", c["total"] / m, rd / m, wr / m, wt / m, c["epoll_ctl"] / m }')
    done
  done
fi
t_end=$(date +%s)
load_mid=$(load_average)

# ---- memory per idle client: a fresh process of each broker ----
declare -A IDLE_B
if [ "$IDLE" -gt 0 ]; then
  for b in "${brokers[@]}"; do
    start_broker "$b" -idle || { IDLE_B[$b]="did not start"; continue; }
    sleep 0.5 # started up: the figure is what the clients add
    icmd="${cli_pin[*]} $bin/mqtt_load idle ${PORT[$b-idle]} $IDLE -P ${PID[$b-idle]}"
    commands+=("$icmd")
    # shellcheck disable=SC2086
    if timeout 300 $icmd >"$work/idle.out" 2>"$work/idle.err"; then
      IDLE_B[$b]=$(awk '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] } }
        END { printf "%s (%s -> %s KiB)", v["bytes_per_client"], v["rss_before_kb"], v["rss_after_kb"] }' "$work/idle.out")
    else
      IDLE_B[$b]="failed: $(tr '\n' ' ' <"$work/idle.err" | cut -c1-120)"
    fi
    stop_broker "$b-idle"
  done
fi
load_after=$(load_average)

# ---- tables ----
stats() { quiet_stats 3 2 4 5 6 +7 +8 +9 +10 <"$work/res.$1"; }
cfg_name() { # CONFIG
  local v q t w
  IFS='|' read -r v q t w <<<"$1"
  echo "QoS $q, ${t%%:*} to ${t##*:}, W=$w$([ "$v" = 5 ] && echo ', MQTT 5.0')"
}
declare -A MED PERCPU
echo "### mqtt: brokers, $SIZE-byte messages, W messages in flight end to end, 127.0.0.1"
echo
echo "$RUNS runs of ${SECS}s per configuration and broker, interleaved ($(((t_end - t_start) / 60)) min); brokers on CPU $SERVER_CPU, mqtt_load on CPU $CLIENT_CPU."
echo "Load average before: $load_before, after the runs: $load_mid, at the end: $load_after. Build: $build_type."
echo "mosquitto: $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -1). aedes: $(sed -n 's/^[[:space:]]*"version": "\(.*\)",/\1/p' "$here/node/node_modules/aedes/package.json" 2>/dev/null | head -1), node $("${NODE:-false}" --version 2>/dev/null || echo -)."
for n in "${notes[@]}"; do echo; echo "$n"; done
echo
echo "| configuration | broker | msgs/s (median) | quiet runs: median (n) | best | msgs per broker CPU-second | broker CPU | mqtt_load CPU | latency | syscalls per msg ($count_with) | lost / dups / errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
for i in "${!configs[@]}"; do
  for b in "${brokers[@]}"; do
    applies "$b" "${configs[$i]}" || continue
    read -r med best qmed nq percpu lpct bpct lat lost dups errs failed <<<"$(stats "$b.$i")"
    MED[$b.$i]=$med PERCPU[$b.$i]=$percpu
    bad="$lost / $dups / $errs"
    [ "$failed" -gt 0 ] && bad="$bad ($failed runs failed)"
    echo "| $(cfg_name "${configs[$i]}") | ${LABEL[$b]} | $med | $(quiet_cell "$qmed" "$nq") | $best | $percpu | $bpct% | $lpct% | $(latency "$lat") | ${SYS[$b.$i]:-n/a} | $bad |"
  done
done
echo
echo "Ratios (median rates; medians of the messages per broker CPU-second). Goal: at least 1.5x mosquitto on both, at most 2 system calls per message."
echo
echo "| configuration | cymg/mosquitto msgs/s | cymg/mosquitto per CPU-second | cymg/aedes msgs/s | cymg/aedes per CPU-second |"
echo "|---|---:|---:|---:|---:|"
for i in "${!configs[@]}"; do
  row="| $(cfg_name "${configs[$i]}") |"
  for p in mosquitto aedes; do
    row="$row $(ratio "${MED[cymg.$i]:-}" "${MED[$p.$i]:-}") | $(ratio "${PERCPU[cymg.$i]:-}" "${PERCPU[$p.$i]:-}") |"
  done
  echo "$row"
done
echo
echo "Memory per idle client ($IDLE clients, each CONNECT + SUBSCRIBE, keep-alive 300 s; a fresh broker process; (VmRSS after - before) / clients):"
echo
echo "| broker | bytes per idle client (RSS before -> after) |"
echo "|---|---|"
for b in "${brokers[@]}"; do echo "| ${LABEL[$b]} | ${IDLE_B[$b]:-n/a} |"; done
echo
echo "Each run, msgs/s with the share of a CPU (%) other programs used meanwhile:"
echo
for i in "${!configs[@]}"; do
  for b in "${brokers[@]}"; do
    applies "$b" "${configs[$i]}" || continue
    echo "- $(cfg_name "${configs[$i]}"), ${LABEL[$b]}: $(each_run 1 3 <"$work/res.$b.$i")"
  done
done
echo
echo "Command lines (ports and process ids chosen at run time):"
echo
echo '```'
printf '%s\n' "${cc_cmds[@]}"
printf '%s\n' "${commands[@]}" | sed -e "s|$work/|\$TMP/|g" -e 's/ run [0-9]* / run PORT /; s/ idle [0-9]* / idle PORT /; s/-P [0-9]*/-P PID/' | unique
echo '```'
