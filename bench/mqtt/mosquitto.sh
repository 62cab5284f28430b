# shellcheck shell=bash
# mosquitto as bench/mqtt/run.sh and profile.sh run it, sourced by both.

# mosquitto_conf PORT FILE: one listener on 127.0.0.1:PORT, no persistence,
# queues and an inflight window that never fill in these benchmarks,
# TCP_NODELAY (the other brokers set it), no logging; `user root` keeps a
# broker started as root from switching to the mosquitto user (the other
# brokers run as whoever starts them, and valgrind's output stays writable).
mosquitto_conf() {
  cat >"$2" <<EOC
listener $1 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 100
set_tcp_nodelay true
log_dest none
user root
EOC
}

# listening PORT: whether something listens on 127.0.0.1:PORT (IPv4).
listening() {
  awk -v p="$(printf '%04X' "$1")" '$2 == "0100007F:" p && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}

# wait_listening PORT PID: until PORT listens (true) or PID ends or 10 s pass.
wait_listening() {
  local _
  for _ in $(seq 200); do
    kill -0 "$2" 2>/dev/null || return 1
    listening "$1" && return 0
    sleep 0.05
  done
  return 1
}
