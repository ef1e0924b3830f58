#!/usr/bin/python3
"""Compares the datasets of two agon run logs bit for bit.

usage: h5_compare.py A.h5 B.h5 [--only PREFIX]...

Every dataset (values and shape) must be identical; attributes are not
compared (they hold timestamps and the command line).  Exit 0 when equal,
1 with one line per difference otherwise.
"""
import sys

import h5py
import numpy as np


def datasets(f, prefixes):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            if not prefixes or any(name.startswith(p) for p in prefixes):
                out[name] = obj[()]

    f.visititems(visit)
    return out


def main():
    args = sys.argv[1:]
    prefixes = [args[i + 1] for i, a in enumerate(args) if a == "--only"]
    files = [a for i, a in enumerate(args) if a != "--only" and (i == 0 or args[i - 1] != "--only")]
    a_path, b_path = files
    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        a, b = datasets(fa, prefixes), datasets(fb, prefixes)
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only in {'A' if name in a else 'B'}")
            continue
        va, vb = np.asarray(a[name]), np.asarray(b[name])
        if va.shape != vb.shape or va.dtype != vb.dtype or va.tobytes() != vb.tobytes():
            problems.append(f"{name}: differs")
    if not a:
        problems.append("no datasets compared")
    for p in problems:
        print(p)
    print(f"compared {len(set(a) & set(b))} datasets")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
