"""Builds the cymongoose._cymg extension.

    pip install --no-build-isolation ./python

When pkg-config knows an installed libcymg (`pkg-config cymg`), the extension links
against it. Otherwise the library's C sources from this source tree (../src,
../include) are compiled into the extension, which then needs nothing else.
CYMG_BUNDLED=1 forces the second way, CYMG_BUNDLED=0 the first.
"""

import glob
import os
import re
import shlex
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.chdir(HERE)  # sources are given relative to this directory


def pkg_config(*args):
    """pkg-config's output split into words, or None if it fails or is missing."""
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out.stdout)


def version():
    for header in (os.path.join(ROOT, "include", "cymg", "version.h"),):
        if os.path.exists(header):
            with open(header) as f:
                m = re.search(r'#define CYMG_VERSION_STRING "([^"]+)"', f.read())
            if m:
                return m.group(1)
    words = pkg_config("--modversion", "cymg")
    return words[0] if words else "0.0.0"


def flags_to_kwargs(words, kw):
    for w in words:
        if w.startswith("-I"):
            kw["include_dirs"].append(w[2:])
        elif w.startswith("-L"):
            kw["library_dirs"].append(w[2:])
            kw["runtime_library_dirs"].append(w[2:])  # found again at import time
        elif w.startswith("-l"):
            kw["libraries"].append(w[2:])
        elif w.startswith("-D"):
            name, _, value = w[2:].partition("=")
            kw["define_macros"].append((name, value or None))
        else:
            kw["extra_link_args"].append(w)


BUNDLED_SOURCES = []


class BuildExt(build_ext):
    def build_extension(self, ext):
        ext.sources = list(ext.sources) + BUNDLED_SOURCES
        super().build_extension(ext)


def extension_kwargs():
    kw = {
        "sources": sorted(glob.glob(os.path.join("ext", "*.c"))),
        "include_dirs": [os.path.join(HERE, "ext")],
        "library_dirs": [],
        "runtime_library_dirs": [],
        "libraries": [],
        "define_macros": [("_GNU_SOURCE", None)],
        "extra_compile_args": ["-std=c11", "-fvisibility=hidden"],
        "extra_link_args": [],
    }
    mode = os.environ.get("CYMG_BUNDLED", "")
    use_installed = mode != "1" and pkg_config("--exists", "cymg") is not None
    if mode == "0" and not use_installed:
        raise SystemExit("CYMG_BUNDLED=0 but pkg-config cannot find cymg")
    if use_installed:
        flags_to_kwargs(pkg_config("--cflags", "cymg") + pkg_config("--libs", "cymg"), kw)
        print("cymongoose: linking the installed libcymg (pkg-config cymg)")
        return kw
    src = os.path.join(ROOT, "src")
    c_files = sorted(glob.glob(os.path.join(src, "**", "*.c"), recursive=True))
    if not c_files:
        raise SystemExit("cymongoose: no installed libcymg (pkg-config cymg) and no sources "
                         "at %s" % src)
    print("cymongoose: compiling the bundled libcymg sources from %s" % src)
    # Added at build time (see BuildExt): files outside this directory may not
    # appear in the package's file list.
    BUNDLED_SOURCES.extend(os.path.relpath(f, HERE) for f in c_files)
    kw["include_dirs"] += [os.path.join(ROOT, "include"), src]
    kw["define_macros"].append(("CYMG_BUILDING", None))
    kw["libraries"].append("pthread")
    # What the library links in the CMake build (OpenSSL's libcrypto for hashes
    # and random, zlib for CRC32 and WebSocket compression), when present.
    deps = [p for p in ("libssl", "libcrypto", "zlib") if pkg_config("--exists", p) is not None]
    if deps:
        flags_to_kwargs(pkg_config("--cflags", *deps) + pkg_config("--libs", *deps), kw)
    return kw


setup(
    version=version(),
    packages=["cymongoose"],
    package_data={"cymongoose": ["py.typed", "*.pyi"]},
    zip_safe=False,
    ext_modules=[Extension("cymongoose._cymg", **extension_kwargs())],
    cmdclass={"build_ext": BuildExt},
)
