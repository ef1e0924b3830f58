#!/usr/bin/env bash
# agon report: a hand-made sweep (2 losses x 2 seeds on the ring of 8, a
# junk file) as one HTML page, checked against an independent reading of
# the logs with h5py: the series charted, the final-value statistics, the
# skipped file, the config differences (against the majority and against
# DIR/base.yaml), escaping, image samples equal to `agon export --png`,
# thinning of long series and the page size, errors word for word; then
# the page rendered in headless Chromium (DOM and a non-blank screenshot).
# usage: e2e_report.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_report
rm -rf "$T" && mkdir -p "$T/sweep" "$T/img" "$T/long"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

# Small and fast: 300 steps with narrow networks, every table and snapshot
# kind the ring experiment logs (a tensor-only d_landscape metric too).
SETS=(--set train.steps=300 --set train.batch_size=128 --set 'generator.hidden=[64,64]'
      --set 'discriminator.hidden=[64,64]' --set 'metrics[0].every=100'
      --set 'metrics[0].n_samples=500' --set 'metrics[1].every=100' --set log.samples_every=100
      --set log.n_samples=256)
for loss in minimax nonsaturating; do
  for seed in 1 2; do
    "$AGON" run "$SRC/experiments/ring8.yaml" -o sweep/${loss}_$seed.h5 "${SETS[@]}" \
      --set loss.plugin=$loss --set seed=$seed --progress none >/dev/null 2>>runs.err ||
      bad "run $loss $seed: $(cat runs.err)"
  done
done
printf 'junk' >sweep/junk.h5

expect "report of the sweep" 0 "sweep/junk.h5: skipped: not an HDF5 file" -- \
  "$AGON" report sweep -o sweep/report.html
if [ "$(cat out.txt)" = "sweep/report.html
4 runs in 2 groups, 1 file skipped: 9 curve charts, 9 final-value charts, 4 sample views" ]; then
  ok "stdout: the path and a summary line"
else bad "stdout: $(cat out.txt)"; fi
echo "report size for the test sweep: $(wc -c <sweep/report.html) bytes"

"$PY" - <<'PYEOF' && ok "page: self-contained; series, final statistics, skipped file, diffs match the logs" || bad "page content"
import glob, html, math, re, sys
import h5py
import numpy as np
page = open("sweep/report.html", encoding="utf-8").read()
ok = True
def check(cond, what):
    global ok
    if not cond:
        print("  mismatch:", what)
        ok = False

# Nothing is fetched: no remote reference, no script file, no stylesheet link.
check(not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', page), "remote src/href")
check("http://" not in page and "https://" not in page, "http(s) URL in the page")
check(not re.search(r"<script[^>]*\bsrc", page, re.I), "<script src")
check(not re.search(r"<link\b", page, re.I), "<link")

# The series, computed independently: every numeric column of /scalars and
# of each metric table (a metric group with a step dataset).
runs = sorted(glob.glob("sweep/*_*.h5"))
want, final = set(), {}
for path in runs:
    loss = path.split("/")[1].split("_")[0]
    with h5py.File(path, "r") as f:
        tables = [("scalars", f["scalars"])]
        tables += [(name, g) for name, g in f["metrics"].items() if "step" in g]
        for name, g in tables:
            for col in g.attrs["columns"].split(","):
                if g[col].dtype.kind in "fiu":
                    want.add(f"{name}/{col}")
                    final.setdefault(f"{name}/{col}", {}).setdefault(loss, []).append(float(g[col][-1]))
charts = re.findall(r'<svg class="agon-chart" data-series="([^"]+)"', page)
finals = re.findall(r'<svg class="agon-final" data-series="([^"]+)"', page)
check(len(charts) == len(set(charts)) and set(charts) == want, f"agon-chart series {charts} != {sorted(want)}")
check(sorted(finals) == sorted(want), f"agon-final series {finals}")
check("mode_coverage/modes" in want and not any(s.startswith("d_landscape/") for s in want),
      "the metric tables of the test sweep")

# Final values: per series and group, n, mean, std, ci95, min, max equal
# numpy's, to the printed 6 digits and, in data-value, to 1e-12.
t975 = 12.706                      # Student's t, two-sided 95%, 1 degree of freedom
rows_seen = 0
for fig in re.findall(r'<figure class="final">(.*?)</figure>', page, re.S):
    series = re.search(r'data-series="([^"]+)"', fig).group(1)
    for row in re.findall(r"<tr><td><span[^>]*></span>(.*?)</tr>", fig):
        group = row.split("</td>")[0]
        cells = re.findall(r'<td class="num"(?: data-value="([^"]+)")?>([^<]*)</td>', row)
        v = np.array(final[series][group])
        m, s = np.mean(v), np.std(v, ddof=1)
        stats = [m, s, t975 * s / math.sqrt(len(v)), v.min(), v.max()]
        check(int(cells[0][1]) == len(v), f"{series} {group} n")
        for (exact, shown), w in zip(cells[1:], stats):
            check(shown == "%.6g" % w, f"{series} {group}: shown {shown}, numpy {w:.6g}")
            check(math.isclose(float(exact), w, rel_tol=1e-12, abs_tol=1e-12), f"{series} {group}: {exact} vs {w!r}")
        rows_seen += 1
check(rows_seen == 2 * len(want), f"{rows_seen} table rows")

# Groups by the key that differs (loss.plugin), seeds aside.
check(re.search(r"<th><code>loss.plugin</code></th>", page) is not None, "grouping key loss.plugin")
check("<code>seed</code></th>" not in page, "seed is not a grouping key")
# The skipped file, in the page too.
check(re.search(r"<li><code>sweep/junk.h5</code>: not an HDF5 file</li>", page) is not None, "skipped file")
# Config diffs against the value most runs share (2:2, so the first met).
diffs = set(re.findall(r"<code>loss.plugin</code>: (\w+) -&gt; (\w+)", page))
check(diffs == {("minimax", "nonsaturating")}, f"loss.plugin diff {diffs}")
check(page.count("<code>seed</code>: 1 -&gt; 2</li>") == 2, "seed diff of the seed-2 runs")
# Samples: each group's lowest seed, first and last snapshot, as SVG.
steps = re.findall(r'<svg class="agon-samples" data-step="(\d+)"', page)
check(steps == ["0", "300", "0", "300"], f"sample steps {steps}")
sys.exit(0 if ok else 1)
PYEOF

# Against DIR/base.yaml (what `agon sweep` writes): the resolved base.
"$AGON" validate "$SRC/experiments/ring8.yaml" "${SETS[@]}" >sweep/base.yaml 2>validate.err ||
  bad "validate: $(cat validate.err)"
expect "report against base.yaml" 0 "sweep/junk.h5: skipped: not an HDF5 file" -- \
  "$AGON" report sweep -o sweep/report.html --by loss.plugin --steps last --title 'Loss <sweep>'
"$PY" - <<'PYEOF' && ok "diffs against base.yaml; --by, --steps and --title" || bad "diffs against base.yaml"
import re, sys
page = open("sweep/report.html", encoding="utf-8").read()
rows = re.findall(r"<tr><td><span[^>]*></span>G\d</td><td><code>\w+</code></td><td>(\w+)\.h5</td>(.*?)</tr>", page)
diffs = {name: re.findall(r"<li><code>([^<]+)</code>: ([^<]*)</li>", row) for name, row in rows}
want = {"minimax_1": [("seed", "0 -&gt; 1"), ("loss.plugin", "nonsaturating -&gt; minimax")],
        "minimax_2": [("seed", "0 -&gt; 2"), ("loss.plugin", "nonsaturating -&gt; minimax")],
        "nonsaturating_1": [("seed", "0 -&gt; 1")], "nonsaturating_2": [("seed", "0 -&gt; 2")]}
ok = diffs == want
ok &= "<code>sweep/base.yaml</code>" in page
ok &= "<title>Loss &lt;sweep&gt;</title>" in page and "Loss <sweep>" not in page
ok &= re.findall(r'<svg class="agon-samples" data-step="(\d+)"', page) == ["300", "300"]
if not ok:
    print(diffs)
sys.exit(0 if ok else 1)
PYEOF
rm sweep/base.yaml

# Image samples: the grid PNG in the page is the file agon export writes.
# Two tiny Fashion-MNIST runs whose descriptions differ, one with markup.
if [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  cat >img.yaml <<'YAML'
seed: 3
dataset: {plugin: fashion_mnist, limit: 200}
generator: {plugin: mlp, hidden: [16], output_activation: tanh}
discriminator: {plugin: mlp, hidden: [16], activation: leaky_relu}
loss: {plugin: nonsaturating}
g_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
d_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
train: {steps: 20, batch_size: 16, latent_dim: 8}
log: {every: 1, samples_every: 10, n_samples: 16}
YAML
  "$AGON" run img.yaml -o img/a.h5 --set 'description=<script>alert(1)</script> a&b' \
    --progress none >/dev/null 2>>runs.err || bad "image run: $(cat runs.err)"
  "$AGON" run img.yaml -o img/b.h5 --set seed=4 --progress none >/dev/null 2>>runs.err ||
    bad "image run: $(cat runs.err)"
  expect "report of image runs" 0 "" -- "$AGON" report img -o img/report.html
  expect "export of the same samples" 0 "" -- "$AGON" export img/a.h5 --png img/png --steps 0,20
  "$PY" - <<'PYEOF' && ok "image grids equal agon export's PNGs; log strings escaped; n = 1 gives nan" || bad "image report"
import base64, re, sys
page = open("img/report.html", encoding="utf-8").read()
imgs = re.findall(r'<img class="agon-samples" data-step="(\d+)" width="(\d+)" height="(\d+)"[^>]* '
                  r'src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
ok = [i[0] for i in imgs] == ["0", "20", "0", "20"]
for step, png in (("0", "img/png/samples_step00.png"), ("20", "img/png/samples_step20.png")):
    ok &= base64.b64decode(imgs[0 if step == "0" else 1][3]) == open(png, "rb").read()
ok &= "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; a&amp;b" in page
ok &= '<td class="num" data-value="nan">nan</td>' in page
sys.exit(0 if ok else 1)
PYEOF
else
  echo "note: Fashion-MNIST is not installed; the image-sample checks are left out"
fi

# Long series: 20 logs of 8000 steps (5 settings x 4 seeds, written with
# h5py) stay well under 2 MB, every line thinned to at most 400 points.
"$PY" - <<'PYEOF' || bad "writing synthetic logs"
import h5py, numpy as np
rng = np.random.default_rng(7)
cols = ["loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"]
for i, lr in enumerate(["1.0e-4", "2.0e-4", "5.0e-4", "1.0e-3", "2.0e-3"]):
    for seed in range(4):
        with h5py.File(f"long/lr{i}_s{seed}.h5", "w") as f:
            f["config"] = f"seed: {seed}\nloss: {{plugin: minimax}}\noptim: {{lr: {lr}}}\n"
            for k, v in (("status", "completed"), ("run_id", f"{i:08x}{seed:08x}")):
                f.attrs[k] = v
            for k, v in (("seed", seed), ("steps_done", 8000), ("steps_planned", 8000)):
                f.attrs[k] = np.int64(v)
            g = f.create_group("scalars")
            g.attrs["columns"] = ",".join(cols)
            g["step"] = np.arange(1, 8001, dtype=np.int64)
            for c in cols:
                g[c] = np.cumsum(rng.normal(size=8000)) * 0.01 + i
            m = f.create_group("metrics/fid")
            m.attrs["columns"] = "fid"
            m["step"] = np.arange(500, 8001, 500, dtype=np.int64)
            m["fid"] = rng.normal(size=16) + 10 * i
PYEOF
expect "report of 20 long runs" 0 "" -- "$AGON" report long -o long/report.html
"$PY" - <<'PYEOF' && ok "20 runs x 8000 steps: page under 2 MB, lines of at most 400 points, thinning said" || bad "long series"
import os, re, sys
page = open("long/report.html", encoding="utf-8").read()
size = os.path.getsize("long/report.html")
print(f"  page of 20 runs x 8000 steps: {size} bytes")
lines = re.findall(r'<svg class="agon-chart" data-series="scalars/[^"]+".*?</svg>', page, re.S)
points = [len(p.split()) for l in lines for p in re.findall(r'<polyline[^>]* points="([^"]*)"', l)]
ok = size < 2_000_000 and len(lines) == 6 and len(points) == 30 and max(points) == 400
ok &= page.count("Thinned for drawing: 8000 steps in 400 buckets") == 6
ok &= "<th><code>optim.lr</code></th>" in page and page.count("<code>seed</code>: 0 -&gt;") == 15
sys.exit(0 if ok else 1)
PYEOF

# Errors, word for word.
USAGE="usage: agon report RUN.h5|DIR... -o REPORT.html [--by KEY[,KEY...]] [--steps first,last|all|LIST] [--title TEXT]"
expect "no -o" 2 "agon report: -o REPORT.html is missing; $USAGE" -- "$AGON" report sweep
expect "bad --steps" 2 "agon report: --steps takes first, last, all or a comma-separated list of steps such as first,1000,last, not 'end'; $USAGE" -- \
  "$AGON" report sweep -o x.html --steps end
mkdir -p junk && printf 'junk' >junk/a.h5
expect "no usable run" 5 "junk/a.h5: skipped: not an HDF5 file
agon report: no usable run log among the inputs; give logs written by agon run or folders of them" -- \
  "$AGON" report junk -o junk/report.html
expect "unwritable -o" 5 "sweep/junk.h5: skipped: not an HDF5 file
$T/no/such/dir/report.html: cannot write report: No such file or directory; choose a folder you can write to" -- \
  "$AGON" report sweep -o "$T/no/such/dir/report.html"
expect "missing input" 5 "nope: no such file or folder; give run logs or folders of them" -- \
  "$AGON" report nope -o x.html
if [ -z "$(ls -A junk | grep -v '^a.h5$')" ] && [ ! -e x.html ]; then ok "nothing written on errors"
else bad "files left behind: $(ls -A junk)"; fi

# Rendered in headless Chromium.
CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
  echo
  echo "e2e_report: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] || exit 1
  echo "SKIP: chromium not installed (tools/deps.sh --test installs it)"
  exit 77
fi
"$AGON" report sweep -o sweep/report.html >/dev/null 2>&1
chromium_page "$T/sweep/report.html" --dump-dom >dom.html
chromium_page "$T/sweep/report.html" --screenshot="$T/shot.png" >/dev/null
SRC="$SRC" "$PY" - <<'PYEOF' && ok "Chromium: 9 rendered charts, a screenshot with the groups' colours" || bad "Chromium rendering (chromium.err: $(tail -3 chromium.err))"
import os, re, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests"))
from png_decode import decode_png

ok = True
dom = open("dom.html", encoding="utf-8").read()
n_dom = len(re.findall(r'<svg class="agon-chart"', dom))
n_final = len(re.findall(r'<svg class="agon-final"', dom))
if n_dom != 9 or n_final != 9:
    print(f"  DOM: {n_dom} agon-chart, {n_final} agon-final")
    ok = False
img = decode_png("shot.png")
px = img.reshape(-1, 3).astype(np.int32)
codes = px[:, 0] * 65536 + px[:, 1] * 256 + px[:, 2]
values, counts = np.unique(codes, return_counts=True)
background = values[np.argmax(counts)]
share = float(np.mean(codes != background))
near = lambda rgb: int(np.sum(np.all(np.abs(px - rgb) <= 12, axis=1)))
blue, orange = near((0x1f, 0x6f, 0xd1)), near((0xe8, 0x71, 0x0a))
print(f"  screenshot {img.shape[1]}x{img.shape[0]}: {len(values)} colours, "
      f"{100 * share:.1f}% not background, group colours {blue} / {orange} pixels")
if img.shape[:2] != (4000, 1280) or len(values) < 200 or share < 0.05 or min(blue, orange) < 500:
    ok = False
sys.exit(0 if ok else 1)
PYEOF

echo
echo "e2e_report: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
