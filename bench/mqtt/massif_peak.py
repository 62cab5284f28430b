#!/usr/bin/env python3
"""Prints the peak snapshot of a massif output file as allocation sites with
bytes per client: massif_peak.py MASSIF_OUT CLIENTS [DEPTH]. Each top-level
site (the function that called malloc) with its callers up to DEPTH frames;
part of bench/mqtt/profile.sh."""
import re
import sys


def main():
    path, clients = sys.argv[1], int(sys.argv[2])
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    snaps, cur = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("snapshot="):
                cur = {"tree": [], "kind": "empty", "heap": 0, "extra": 0}
                snaps.append(cur)
            elif cur is None:
                continue
            elif line.startswith("mem_heap_B="):
                cur["heap"] = int(line.split("=")[1])
            elif line.startswith("mem_heap_extra_B="):
                cur["extra"] = int(line.split("=")[1])
            elif line.startswith("heap_tree="):
                cur["kind"] = line.split("=")[1]
            elif re.match(r"^ *n[0-9]+: ", line):
                cur["tree"].append(line)
    peak = [s for s in snaps if s["kind"] == "peak"] or [max(snaps, key=lambda s: s["heap"])]
    s = peak[0]
    print(f"heap {s['heap']} B + {s['extra']} B malloc overhead: "
          f"{s['heap'] / clients:.0f} + {s['extra'] / clients:.0f} B per client")
    for line in s["tree"][1:]:
        m = re.match(r"^( *)n[0-9]+: ([0-9]+) (.*)$", line)
        if not m:
            continue
        level = len(m.group(1))
        if level > depth:
            continue
        desc = re.sub(r"^0x[0-9A-F]+: ", "", m.group(3))
        desc = re.sub(r" \(in [^)]*\)", "", desc)
        print(f"{'  ' * (level - 1)}{int(m.group(2)) / clients:8.1f} B/client  {desc}")


if __name__ == "__main__":
    main()
