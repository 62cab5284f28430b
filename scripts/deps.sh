#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, only when
# some are missing. Usage: scripts/deps.sh [build|test|bench]
set -euo pipefail
what=${1:-test}
pkgs=(build-essential cmake pkg-config libssl-dev zlib1g-dev liburing-dev)
case "$what" in
  build) ;;
  test) pkgs+=(libcmocka-dev clang libclang-rt-14-dev curl python3-dev python3-pytest
              python3-websocket python3-pip python3-setuptools chrony
              dnsmasq-base python3-dnslib openssl
              python3-flask python3-bottle python3-django python3-starlette python3-fastapi
              python3-pytest-asyncio python3-httpx mosquitto mosquitto-clients python3-paho-mqtt) ;;
              # test peers: websocket, chronyd (SNTP), dnsmasq (no system service: DNS), openssl
              # (certificates, s_client/s_server: TLS), the WSGI/ASGI frameworks (python adapters),
              # mosquitto, its clients and paho (MQTT; no system service)
  bench) pkgs+=(libcmocka-dev wrk strace libc-ares-dev dnsmasq-base curl nginx-light python3-dev python3-aiohttp python3-uvicorn
              python3-httptools gunicorn) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm (the WebSocket tests' peer, the ws benchmark's) are checked by command: a machine may
# have them from another source, whose nodejs already bundles npm.
if [ "$what" = test ] || [ "$what" = bench ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing missing Debian packages: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The tests start their own chronyd and mosquitto on loopback ports; the packages'
# system services would take ports 123 and 1883 (and chronyd steer this machine's
# clock): keep them off.
for svc in chrony mosquitto; do
  [[ " ${missing[*]} " == *" $svc "* ]] || continue
  if [ -d /run/systemd/system ]; then
    "${sudo_cmd[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif command -v invoke-rc.d >/dev/null; then
    "${sudo_cmd[@]}" invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
    "${sudo_cmd[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done
