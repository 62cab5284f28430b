#!/usr/bin/env bash
# Installs BUILD into a temporary prefix and builds tests/install/consumer.c against
# it twice: with pkg-config and with find_package(cymg). Both programs must run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -maxdepth 1 -name 'lib*' -type d | head -1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# Only cymg_ symbols may leave the shared library.
bad=$(nm -D --defined-only "$libdir"/libcymg.so | awk '{print $3}' | grep -v -E '^(cymg_[a-zA-Z0-9]|CYMG_0)' || true)
if [ -n "$bad" ]; then echo "non-cymg_ exports: $bad" >&2; exit 1; fi
soname=$(readelf -d "$libdir"/libcymg.so | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
case "$soname" in libcymg.so.[0-9]*) ;; *) echo "bad SONAME '$soname'" >&2; exit 1 ;; esac
read -ra pc_flags <<<"$(pkg-config --cflags --libs cymg)"
cc tests/install/consumer.c -o "$tmp/with-pkgconfig" "${pc_flags[@]}" \
  -Wl,-rpath,"$libdir"
"$tmp/with-pkgconfig"
cmake -S tests/install -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
echo "install check: pkg-config and find_package consumers ran ($soname)"

# The Python package, both ways pip can build it: against the libcymg just
# installed (found through pkg-config), and from the bundled sources.
py=/usr/bin/python3
smoke='import cymongoose as c; m = c.Manager(); l = m.listen("http://127.0.0.1:0"); assert l.local_addr[1] > 0; m.close(); print("cymongoose", c.__file__)'
for mode in 0 1; do
  rm -rf python/build python/*.egg-info
  CYMG_BUNDLED=$mode "$py" -m pip install -q --no-build-isolation --no-index --no-deps \
    --target "$tmp/py$mode" ./python 2>&1 | grep -v -i "running pip as the 'root' user" || true
  LD_LIBRARY_PATH="$libdir" PYTHONPATH="$tmp/py$mode" "$py" -c "$smoke" >/dev/null ||
    { echo "install check: pip install (CYMG_BUNDLED=$mode) did not import and serve" >&2; exit 1; }
done
rm -rf python/build python/*.egg-info
echo "install check: pip install ./python works against the installed library and bundled"
