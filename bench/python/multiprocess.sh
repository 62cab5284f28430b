#!/usr/bin/env bash
# Worker processes sharing one port, Python: examples/python/multiprocess_server.py
# --workers W (cymongoose, listen(reuse_port=True)) against W aiohttp processes
# (TCPSite(reuse_port=True)) in the same run; wrk on 127.0.0.1, keep-alive,
# CONNS connections, 2 threads, RUNS interleaved runs of SECS seconds. Reports
# requests/s and requests per server CPU-second (utime+stime of all the
# workers, from /proc) and the load average.
#   bench/python/multiprocess.sh [BUILD_DIR]   knobs: W (2) RUNS (5) SECS (2) CONNS (50)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$(cd "${1:-build}" && pwd)
W=${W:-2} RUNS=${RUNS:-5} SECS=${SECS:-2} CONNS=${CONNS:-50}
py=/usr/bin/python3
# shellcheck source=bench/lib.sh
source bench/lib.sh
make_workdir
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT

PYTHONPATH=$build/python "$py" examples/python/multiprocess_server.py http://127.0.0.1:0 --workers "$W" \
  >"$work/mp.out" 2>"$work/mp.err" & mpid=$!; pids+=("$mpid")
for _ in $(seq 200); do grep -q "^serving" "$work/mp.out" && break; sleep 0.05; done
cport=$(sed -n 's|.*127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/mp.out")
read -r -a cworkers <<<"$(sed -n 's/.*(pids \([0-9 ]*\)).*/\1/p' "$work/mp.out")"
[ "${#cworkers[@]}" -eq "$W" ] || { echo "multiprocess_server did not start: $(cat "$work/mp.err")" >&2; exit 1; }

cat >"$work/aio.py" <<'PY'
import asyncio, signal, sys
from aiohttp import web
async def hello(request):
    return web.Response(text="hello")
async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]), reuse_port=True).start()
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    await stop.wait()
    await runner.cleanup()
asyncio.run(main())
PY
aport=$(free_port)
aworkers=()
for _ in $(seq "$W"); do "$py" "$work/aio.py" "$aport" & aworkers+=("$!"); pids+=("$!"); done
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:$cport/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$aport/" >/dev/null 2>&1 && break
  sleep 0.05
done
echo "load average before: $(load_average)"
for _ in $(seq "$RUNS"); do
  wrk_round cymongoose "$cport" "${cworkers[@]}"
  wrk_round aiohttp "$aport" "${aworkers[@]}"
done | tee "$work/runs"
echo "load average after: $(load_average)"
round_medians "$work/runs" cymongoose aiohttp
kill -TERM "$mpid"; wait "$mpid" || { echo "multiprocess_server exit code $?" >&2; exit 1; }
