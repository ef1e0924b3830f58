#!/usr/bin/python3
"""Figures of agon's reproductions (docs/results.md), read from run logs.

    figures.py completed RUN.h5         exit 0 when the log finished as completed
    figures.py optimal_d DIR            reproduction 1: D against D*, V(D, G) against -log 4 + 2 JS
    figures.py saturation DIR           reproduction 2: G's gradient, minimax vs non-saturating
    figures.py hopping DIR              reproduction 3: where the generated mass sits over time
    figures.py coverage DIR             reproduction 4: mode coverage table
    figures.py fmnist DIR               reproduction 5: DCGAN sample quality over training

Needs Debian's python3-h5py and python3-numpy (tools/deps.sh installs them).
"""
import glob
import math
import os
import sys

import h5py
import numpy as np


def status(path):
    try:
        with h5py.File(path, "r") as f:
            return f.attrs["status"]
    except (OSError, KeyError):
        return None


def mean_std(values):
    v = np.asarray(values, dtype=float)
    std = v.std(ddof=1) if len(v) > 1 else 0.0
    return v.mean(), std


def last_metric(path, metric, column):
    with h5py.File(path, "r") as f:
        return float(f["metrics/%s/%s" % (metric, column)][-1])


def coverage(directory):
    rows = [("ring8", "ring of 8", "non-saturating"),
            ("ring8_minimax", "ring of 8", "minimax"),
            ("grid25", "grid of 25", "non-saturating"),
            ("grid25_minimax", "grid of 25", "minimax")]
    print("| data | loss | seeds | modes captured | high-quality % | KL(modes ‖ uniform) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for exp, data, loss in rows:
        logs = sorted(glob.glob(os.path.join(directory, exp + "_s*.h5")))
        logs = [p for p in logs if status(p) == "completed"]
        if not logs:
            print("| %s | %s | 0 | — | — | — |" % (data, loss))
            continue
        cols = []
        for column in ("modes", "high_quality", "kl"):
            cols.append(mean_std([last_metric(p, "mode_coverage", column) for p in logs]))
        print("| %s | %s | %d | %.1f ± %.1f | %.1f ± %.1f | %.3f ± %.3f |"
              % (data, loss, len(logs), cols[0][0], cols[0][1], cols[1][0], cols[1][1],
                 cols[2][0], cols[2][1]))
    print()
    print("Per seed, modes captured / high-quality %:")
    print()
    print("| experiment | " + " | ".join("seed %d" % s for s in range(5)) + " |")
    print("| --- " * 6 + "|")
    for exp, _, _ in rows:
        cells = []
        for seed in range(5):
            p = os.path.join(directory, "%s_s%d.h5" % (exp, seed))
            if status(p) != "completed":
                cells.append(str(status(p)))
                continue
            cells.append("%d / %.0f%%" % (last_metric(p, "mode_coverage", "modes"),
                                          last_metric(p, "mode_coverage", "high_quality")))
        print("| `%s` | %s |" % (exp, " | ".join(cells)))


def saturation(directory):
    with h5py.File(os.path.join(directory, "minimax.h5"), "r") as fm, \
            h5py.File(os.path.join(directory, "nonsaturating.h5"), "r") as fn:
        mm, ns = fm["scalars"], fn["scalars"]
        steps = mm["step"][()]
        if not np.array_equal(mm["d_fake"][()], ns["d_fake"][()]):
            print("warning: D's trajectories differ between the two runs")
        print("| step | D(G(z)) | grad_norm_g minimax | grad_norm_g non-saturating | ratio |")
        print("| --- | --- | --- | --- | --- |")
        for want in (1, 10, 25, 50, 100, 200, 300, 400, 500):
            hits = np.nonzero(steps == want)[0]
            if len(hits) == 0:
                continue
            i = hits[0]
            a, b = mm["grad_norm_g"][i], ns["grad_norm_g"][i]
            print("| %d | %.4f | %.3g | %.3g | %.1f |" % (want, mm["d_fake"][i], a, b, b / a))


def optimal_d(directory):
    with h5py.File(os.path.join(directory, "optimal_d.h5"), "r") as f:
        od, dv = f["metrics/optimal_discriminator"], f["metrics/divergence"]
        freeze = None
        for line in f["config"].asstr()[()].splitlines():
            if line.strip().startswith("freeze_g_from:"):
                freeze = int(line.split(":")[1])
        print("G frozen from step %s; D trains on." % freeze)
        print()
        print("| step | max abs D − D* | mean abs D − D* (mass-weighted) | mean abs (uniform on support) "
              "| V(D, G) | −log 4 + 2 JS | difference | JS |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for i, step in enumerate(od["step"][()]):
            v, vo = od["value"][i], od["value_optimal"][i]
            print("| %d | %.4f | %.4f | %.4f | %.4f | %.4f | %+.4f | %.4f |"
                  % (step, od["max_abs_err"][i], od["mean_abs_err"][i],
                     od["mean_abs_err_uniform"][i], v, vo, v - vo, od["js"][i]))
        steps = od["step"][()]
        late = steps > steps[-1] / 2
        gap = np.abs(od["value"][()] - od["value_optimal"][()])[late]
        print()
        print("second half (steps %d-%d, %d evaluations): mass-weighted mean |D - D*| %.4f "
              "(largest %.4f); max |D - D*| on the support %.4f (median); "
              "|V - (-log 4 + 2 JS)| mean %.4f, largest %.4f"
              % (steps[late][0], steps[-1], int(late.sum()), od["mean_abs_err"][()][late].mean(),
                 od["mean_abs_err"][()][late].max(), np.median(od["max_abs_err"][()][late]),
                 gap.mean(), gap.max()))
        print()
        print("divergence at the last step: JS %.4f, KL(p_data || p_g) %.4f, KL(p_g || p_data) %.4f, "
              "bandwidth %.4f" % (dv["js"][-1], dv["kl_data_g"][-1], dv["kl_g_data"][-1],
                                  dv["bandwidth"][-1]))


def hopping_one(path, label, shown=lambda step: True):
    with h5py.File(path, "r") as f:
        mc = f["metrics/mode_coverage"]
        hist = mc["tensors/histogram"][()]
        steps = mc["tensors/step"][()]
        n = float(mc.attrs["n_samples"])
        print("%s: where the samples are.  'near modes' lists each mode holding at least 1%% "
              "of the samples within %s mode stds, with its share; the centre and radius are "
              "those of the logged sample snapshot at that step (ring radius 2)."
              % (label, mc.attrs["quality_stds"]))
        print()
        snaps = {int(s): x for s, x in zip(f["samples/step"][()], f["samples/x"][()])}
        print("| step | near modes (share %) | modes captured | near any mode % | "
              "centre of the samples | mean radius |")
        print("| --- | --- | --- | --- | --- | --- |")
        dominant = []
        held = []
        for i, step in enumerate(steps):
            row = hist[i]
            if row.max() > 0:
                dominant.append(int(np.argmax(row)))
            held.append(set(int(m) for m in np.nonzero(row >= 0.01 * n)[0]))
            if not shown(step):
                continue
            near = ", ".join("%d (%.0f)" % (m, 100.0 * row[m] / n)
                             for m in np.nonzero(row >= 0.01 * n)[0]) or "none"
            centre = radius = ""
            if int(step) in snaps:
                x = snaps[int(step)]
                centre = "(%.2f, %.2f)" % tuple(x.mean(axis=0))
                radius = "%.2f" % np.linalg.norm(x, axis=1).mean()
            print("| %d | %s | %d | %.0f | %s | %s |" % (step, near, mc["modes"][i],
                                                        mc["high_quality"][i], centre, radius))
        changes = sum(1 for a, b in zip(dominant, dominant[1:]) if a != b)
        visited = set().union(*held)
        print()
        print("%s: the mode holding the most samples changed %d times; modes holding >= 1%% "
              "of the samples: at most %d at once, %d different ones over the run"
              % (label, changes, max(len(h) for h in held), len(visited)))
        print()


def hopping(directory):
    hopping_one(os.path.join(directory, "frozen_d.h5"), "D frozen from step 1500",
                shown=lambda step: step <= 1700 or step % 500 == 0)
    hopping_one(os.path.join(directory, "g_steps.h5"), "5 G steps per D step")


def fmnist(directory):
    runs = [("non-saturating", "nonsaturating.h5"), ("minimax", "minimax.h5")]
    for label, name in runs:
        path = os.path.join(directory, name)
        if status(path) != "completed":
            print("%s: %s has status %s" % (label, path, status(path)))
            continue
        with h5py.File(path, "r") as f:
            m = f["metrics"]
            fd, pr = m["frechet"], m["precision_recall"]
            cs, cm = m["classifier_score"], m["class_modes"]
            print("%s (classifier %s..., test accuracy %.4f)"
                  % (label, fd.attrs["feature_sha256"][:12],
                     float(fd.attrs["classifier_test_accuracy"])))
            print()
            print("| step | FD | precision | recall | density | coverage | classifier score "
                  "| classes covered | class KL |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for i, step in enumerate(fd["step"][()]):
                print("| %d | %.2f | %.3f | %.3f | %.3f | %.3f | %.2f ± %.2f | %d / %d | %.3f |"
                      % (step, fd["fd"][i], pr["precision"][i], pr["recall"][i],
                         pr["density"][i], pr["coverage"][i], cs["score"][i],
                         cs["score_std"][i], cm["modes"][i], cm["max_modes"][i], cm["kl"][i]))
            print()
            print("real data: classifier score %.2f" % cs["score_real"][-1])
            print()


def main(argv):
    if len(argv) == 3 and argv[1] == "completed":
        return 0 if status(argv[2]) == "completed" else 1
    commands = {"coverage": coverage, "saturation": saturation, "optimal_d": optimal_d,
                "hopping": hopping, "fmnist": fmnist}
    if len(argv) != 3 or argv[1] not in commands:
        sys.stderr.write("usage: figures.py completed RUN.h5 | figures.py {%s} DIR\n"
                         % "|".join(sorted(commands)))
        return 2
    commands[argv[1]](argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
