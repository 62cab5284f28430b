#!/usr/bin/env bash
# Runs every benchmark (bench/*/run.sh) one after another and prints their
# markdown tables under one heading with the machine and its load, so a paste of
# the output is a complete record. Exits non-zero if any benchmark failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
echo "## libcymg benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $(nproc) CPUs, $(uname -sr), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)."
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
failed=()
for script in "$here"/*/run.sh; do
  [ -x "$script" ] || continue
  name=$(basename "$(dirname "$script")")
  echo
  # Benchmarks run one at a time: running two at once would measure each other.
  if ! "$script"; then
    echo "**$name: FAILED**"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
