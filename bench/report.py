#!/usr/bin/python3
"""Prints bench/run.sh's tables from the raw results it wrote to --out.

Files read (tab-separated, with a header line):
  passes.tsv  pass label core
  raw.tsv     pass workload threads side setting repeat steps_per_s
  bound.tsv   pass workload threads steps_per_s
  flops.tsv   workload calls_per_step flops_per_step
"""
import argparse
import csv
import os
import platform
import statistics
import sys
import time

WORKLOAD_NAMES = {"w1": "W1 toy2d", "w2": "W2 dcgan28"}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def setting_text(setting):
    """'freeze/1' -> 'freeze, OB 1'; 'plain/1p' -> 'plain, OB 1, passive'"""
    variant, ob = setting.split("/")
    text = {"1": "OB 1", "default": "OB default", "1p": "OB 1, passive"}.get(ob, ob)
    return f"{variant}, {text}"


def table(header, rows, align):
    """Aligned text table; align is a string of 'l'/'r' per column."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for n, r in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        out.append("  ".join(parts).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--load-start", default="?", help="1-minute load average at the start")
    args = ap.parse_args()
    d = args.out
    passes = read(os.path.join(d, "passes.tsv"))
    raw = read(os.path.join(d, "raw.tsv"))
    bounds = read(os.path.join(d, "bound.tsv"))
    flops = {r["workload"]: r for r in read(os.path.join(d, "flops.tsv"))}

    runs = {}   # (pass, workload, threads, side, setting) -> [steps/s]
    for r in raw:
        key = (r["pass"], r["workload"], int(r["threads"]), r["side"], r["setting"])
        runs.setdefault(key, []).append(float(r["steps_per_s"]))
    best_bound = {}
    for r in bounds:
        key = (r["pass"], r["workload"], int(r["threads"]))
        best_bound[key] = max(best_bound.get(key, 0.0), float(r["steps_per_s"]))
    workloads = sorted({k[1] for k in runs})
    threads = sorted({k[2] for k in runs})

    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "?"
    print("agon vs PyTorch: one GAN training step (one D update + one G update), CPU")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
          f"{cpu_model()}, {os.cpu_count()} CPUs; PyTorch {torch_version}")
    print(f"1-minute load average {args.load_start} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end (> 0.2 or so: other work was running)")
    print(f"median steps/s of {args.repeats} run(s) of >= {args.seconds:g} s per side and "
          "setting, agon and PyTorch alternating")
    print("spread = (max - min) / median over the runs; agon/PyTorch > 1: agon is faster")
    print("PyTorch setting: freeze = D's parameters need no gradient in the G step, plain = "
          "they do;")
    print("  OB 1 = OPENBLAS_NUM_THREADS=1, OB default = one OpenBLAS thread per core, "
          "passive = OMP_WAIT_POLICY=PASSIVE;")
    print("  the fastest setting is the reference")

    for p in passes:
        name = p["pass"]
        print()
        print(f"== {p['label']}; OpenBLAS kernels: {p['core'] or '?'} ==")
        rows = []
        agon_med = {}
        torch_med = {}
        for w in workloads:
            for t in threads:
                a = runs.get((name, w, t, "agon", "-"))
                if not a:
                    continue
                am = statistics.median(a)
                agon_med[(w, t)] = am
                best = None
                for key, vals in runs.items():
                    if key[:4] == (name, w, t, "torch"):
                        m = statistics.median(vals)
                        if best is None or m > best[0]:
                            best = (m, key[4], vals)
                if best is None:
                    continue
                torch_med[(w, t)] = best[0]
                rows.append([WORKLOAD_NAMES.get(w, w), t, f"{am:.1f}",
                             f"{(max(a) - min(a)) / am * 100:.0f}%", f"{best[0]:.1f}",
                             f"{(max(best[2]) - min(best[2])) / best[0] * 100:.0f}%",
                             setting_text(best[1]), f"{am / best[0]:.2f}"])
        print(table(["workload", "threads", "agon", "spread", "PyTorch", "spread",
                     "PyTorch setting", "agon/PyTorch"], rows, "lrrrrrlr"))

        if 1 in threads and len(threads) > 1:
            print()
            srows = []
            for w in workloads:
                for t in threads:
                    if t == 1 or (w, t) not in agon_med or (w, 1) not in agon_med:
                        continue
                    srows.append([WORKLOAD_NAMES.get(w, w), f"{t}/1",
                                  f"{agon_med[(w, t)] / agon_med[(w, 1)]:.2f}x",
                                  f"{torch_med[(w, t)] / torch_med[(w, 1)]:.2f}x"])
            print(table(["workload", "threads", "agon speedup", "PyTorch speedup"], srows,
                        "lrrr"))

        print()
        settings = sorted({k[4] for k in runs if k[0] == name and k[3] == "torch"})
        prow = []
        for w in workloads:
            for t in threads:
                row = [WORKLOAD_NAMES.get(w, w), t]
                for s in settings:
                    vals = runs.get((name, w, t, "torch", s))
                    row.append(f"{statistics.median(vals):.1f}" if vals else "-")
                prow.append(row)
        print("every PyTorch setting (median steps/s; 1 = OB 1, 1p = OB 1, passive, "
              "default = OB default):")
        print(table(["workload", "threads"] + [s.replace("/", " ") for s in settings], prow,
                    "lr" + "r" * len(settings)))

        print()
        print("GEMM bound: agon's matrix products of one step replayed alone through "
              "agon_gemm (bench/gemm_bound.c, best of 3)")
        brows = []
        noisy = False
        for w in workloads:
            f = flops.get(w)
            row = [WORKLOAD_NAMES.get(w, w),
                   f"{float(f['flops_per_step']) / 1e6:.1f}" if f else "?",
                   f["calls_per_step"] if f else "?"]
            for t in threads:
                b = best_bound.get((name, w, t))
                a = agon_med.get((w, t))
                row.append(f"{b:.1f}" if b else "-")
                flag = "*" if a and b and a > b else ""
                noisy = noisy or bool(flag)
                row.append(f"{a / b * 100:.0f}%{flag}" if a and b else "-")
            brows.append(row)
        hdr = ["workload", "MFLOP/step", "GEMMs/step"]
        for t in threads:
            hdr += [f"bound {t}t", f"agon/bound {t}t"]
        print(table(hdr, brows, "lrr" + "rr" * len(threads)))
        if noisy:
            print("* above the bound: the machine was busy while the bound or agon was "
                  "measured; rerun on a quiet machine")

    # The price of portable bits: the same agon steps with each kernel set.
    names = [p["pass"] for p in passes]
    if "portable" in names and "native" in names:
        cores = {p["pass"]: p["core"] or "?" for p in passes}
        print()
        print(f"== cost of portability: agon with portable ({cores['portable']}) against "
              f"native ({cores['native']}) kernels, median steps/s ==")
        crows = []
        for w in workloads:
            for t in threads:
                a = runs.get(("portable", w, t, "agon", "-"))
                b = runs.get(("native", w, t, "agon", "-"))
                if not a or not b:
                    continue
                pm, nm = statistics.median(a), statistics.median(b)
                crows.append([WORKLOAD_NAMES.get(w, w), t, f"{pm:.1f}", f"{nm:.1f}",
                              f"{pm / nm:.2f}"])
        print(table(["workload", "threads", "portable", "native", "portable/native"], crows,
                    "lrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
