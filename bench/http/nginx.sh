# shellcheck shell=bash disable=SC2034
# The nginx-light server of bench/http (run.sh, idle.sh), sourced after
# lib.sh: start_nginx writes $work/nginx/nginx.conf and starts it on a free
# port; sets PORT[nginx], PID[nginx] (the master), nginx_worker (the one
# worker, the process to measure) and appends its command line to commands.
# NGINX_CONNS (1024) is worker_connections; the descriptor limit follows it.
NGINX_CONNS=${NGINX_CONNS:-1024}
# nginx: 1 worker, everything it writes under $work, so it runs as root or not.
# As root the worker drops to nobody, hence a world-readable prefix.
nginx_worker='' ngx_cmd=()
start_nginx() {
  [ -x "$NGINX" ] || return 1
  mkdir -p "$work/nginx"
  local port
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ":$port\$" && continue
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections $NGINX_CONNS; }
worker_rlimit_nofile $((NGINX_CONNS + 64));
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  sendfile on;
  server {
    listen 127.0.0.1:$port;
    default_type text/plain;
    location / { return 200 "hello"; }
    location /static/ { root $work/www; }
  }
}
EOF
    ngx_cmd=("${srv_pin[@]}" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log")
    "${ngx_cmd[@]}" >"$work/nginx.out" 2>&1 &
    PID[nginx]=$!
    for _ in $(seq 100); do
      nginx_worker=$(pgrep -P "${PID[nginx]}" | head -1 || true)
      [ -n "$nginx_worker" ] && curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
      kill -0 "${PID[nginx]}" 2>/dev/null || break
      sleep 0.05
    done
    if [ -n "$nginx_worker" ] && kill -0 "${PID[nginx]}" 2>/dev/null; then
      PORT[nginx]=$port
      commands+=("${ngx_cmd[*]}")
      return 0
    fi
    kill "${PID[nginx]}" 2>/dev/null || true
    wait "${PID[nginx]}" 2>/dev/null || true
    unset "PID[nginx]"
  done
  cat "$work/nginx.out" "$work/nginx/error.log" >&2 2>/dev/null || true
  return 1
}
