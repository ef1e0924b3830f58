#!/usr/bin/env bash
# tools/python/agon_h5.py, the Python reader of run logs: its arrays equal
# what h5py reads (bit for bit), a sweep folder loads with unreadable files
# skipped and named, crashed logs are cut to the common prefix, a log being
# written loads (SWMR) and so does the one its killed writer left, the
# command line prints one line per run, and the pandas functions either
# build their frames or say clearly that pandas is missing.
# usage: e2e_agon_h5.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
MOD=$SRC/tools/python/agon_h5.py
T=$(pwd)/tmp_e2e_agon_h5
rm -rf "$T" && mkdir -p "$T/sweep/sub" "$T/empty"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"
export AGON_H5_DIR=$SRC/tools/python PYTHONDONTWRITEBYTECODE=1

# pycheck NAME -- python code on stdin (exit 0: pass; its output explains a failure)
pycheck() {
  if "$PY" - >py.out 2>&1; then ok "$1"; else bad "$1: $(head -c 1500 py.out)"; fi
}

cat >f.yaml <<'EOF'
seed: 5
dataset: {plugin: gaussian_mixture, layout: ring, modes: 8}
generator: {plugin: mlp, hidden: [32, 32]}
discriminator: {plugin: mlp, hidden: [32, 32], activation: leaky_relu}
loss: {plugin: nonsaturating}
g_optimizer: {plugin: adam, lr: 5.0e-4, beta1: 0.5}
d_optimizer: {plugin: adam, lr: 5.0e-4, beta1: 0.5}
train: {steps: 200, batch_size: 64, latent_dim: 8}
log: {every: 1, samples_every: 50, n_samples: 128}
metrics:
  - {plugin: mode_coverage, every: 50, n_samples: 500}
EOF
expect "run a (nonsaturating)" 0 "" -- "$AGON" run f.yaml -o sweep/a.h5 --progress none
# b's description needs quoting and escapes in /config, for the YAML reader.
expect "run b (minimax, seed 7)" 0 "" -- "$AGON" run f.yaml -o sweep/b.h5 --progress none \
  --set loss.plugin=minimax --set seed=7 \
  --set 'description="ring: minimax # \"quoted\" back\\slash, tab\t, é"'
printf 'not an HDF5 file\n' >sweep/junk.h5
printf 'notes\n' >sweep/notes.txt
cp sweep/a.h5 sweep/sub/c.h5
"$PY" -c "import h5py; h5py.File('sweep/other.h5', 'w').attrs['x'] = 1"

# ---- load_run equals h5py, bit for bit ---------------------------------------------
pycheck "load_run: every dataset and attribute equals h5py's, bit for bit" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import h5py, numpy as np, agon_h5

def same(a, b):
    return (isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
            and a.tobytes() == b.tobytes())

for name, loss in (("a", "nonsaturating"), ("b", "minimax")):
    path = f"sweep/{name}.h5"
    run = agon_h5.load_run(path)
    with h5py.File(path, "r") as f:
        assert run["path"] == path
        assert set(run["attrs"]) == set(f.attrs), (set(run["attrs"]), set(f.attrs))
        for k, v in f.attrs.items():
            got = run["attrs"][k]
            if isinstance(v, str):
                assert type(got) is str and got == v, k
            elif isinstance(v, np.integer):
                assert type(got) is int and got == int(v), k
            else:
                assert type(got) is float and got == float(v), k
        assert run["config"] == f["config"].asstr()[()]
        groups = {"scalars": run["scalars"], "samples": run["samples"]}
        for m in f["metrics"]:
            groups["metrics/" + m] = run["metrics"][m]
            groups[f"metrics/{m}/tensors"] = run["metric_tensors"][m]
        assert set(run["metrics"]) == set(f["metrics"]) == {"mode_coverage"}
        for g, loaded in groups.items():
            names = {n for n, o in f[g].items() if isinstance(o, h5py.Dataset)}
            assert set(loaded) == names, (g, set(loaded), names)
            for n in names:
                assert same(loaded[n], f[g][n][()]), (g, n)
        for part in ("generator", "discriminator"):
            names = set(f["final"][part])
            assert names and set(run["final"][part]) == names, part
            for n in names:
                assert same(run["final"][part][n], f["final"][part][n][()]), (part, n)
        assert set(run["metric_attrs"]["mode_coverage"]) == set(f["metrics/mode_coverage"].attrs)
    assert "diverged" not in run
    s = run["scalars"]
    assert np.array_equal(s["step"], np.arange(1, 201)), s["step"]
    assert list(s) == ["step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"], list(s)
    assert run["metrics"]["mode_coverage"]["step"].tolist() == [50, 100, 150, 200]
    assert run["metric_tensors"]["mode_coverage"]["histogram"].shape == (4, 8)
    assert run["samples"]["step"].tolist() == [0, 50, 100, 150, 200]
    assert run["samples"]["x"].shape == (5, 128, 2)
    assert agon_h5.steps_done(run) == 200 and agon_h5.writer_state(run) is None
    cfg = agon_h5.parse_config(run["config"])
    assert agon_h5.config_value(cfg, "loss.plugin") == loss
    assert agon_h5.config_value(cfg, "dataset.layout") == "ring"
    assert agon_h5.config_value(cfg, "metrics[0].every") == 50
    assert agon_h5.config_value(cfg, "metrics.0.n_samples") == 500
    assert agon_h5.config_value(cfg, "g_optimizer.lr") == 5.0e-4
    assert agon_h5.config_value(cfg, "generator.hidden") == [32, 32]
    assert agon_h5.config_value(cfg, "dataset.means") == [-2, 2]
    assert agon_h5.config_value(cfg, "dataset.stds") == []
    assert agon_h5.config_value(cfg, "log.output") == ""
    assert agon_h5.config_value(cfg, "metrics[3].every", "none") == "none"
    assert agon_h5.config_value(cfg, "loss.plugin.x") is None
    assert cfg.get("description", "") == run["attrs"]["description"], (cfg.get("description"), run["attrs"]["description"])
EOF

pycheck "the fallback YAML reader gives PyYAML's result on both configs" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import agon_h5
if agon_h5._yaml is None:
    print("PyYAML is not installed: nothing to compare the fallback with")
    sys.exit(1)
for name in ("a", "b"):
    text = agon_h5.load_run(f"sweep/{name}.h5")["config"]
    assert agon_h5._parse_block_yaml(text) == agon_h5.parse_config(text), name
# Shapes agon's writer produces that the two configs above lack.
text = 'a:\n  - - 1\n    - x\n  - []\n  - k: "v: w"\n    "<<": {}\n  - null\nb: -.5e3\nc: "007"\nd: 0x1F\ne: yes\n'
want = {"a": [[1, "x"], [], {"k": "v: w", "<<": {}}, None], "b": -500.0, "c": "007", "d": 31, "e": "yes"}
assert agon_h5._parse_block_yaml(text) == want, agon_h5._parse_block_yaml(text)
assert agon_h5.parse_config(text) == want, agon_h5.parse_config(text)
EOF

# ---- a sweep folder ----------------------------------------------------------------
pycheck "load_sweep: a.h5 and b.h5 in order, junk.h5 and other.h5 skipped with one warning each" <<'EOF'
import contextlib, io, os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import h5py, numpy as np, agon_h5
err = io.StringIO()
with contextlib.redirect_stderr(err):
    runs = agon_h5.load_sweep("sweep")
assert [r["path"] for r in runs] == ["sweep/a.h5", "sweep/b.h5"], [r["path"] for r in runs]
try:
    h5py.File("sweep/junk.h5", "r", swmr=True)
    raise SystemExit("h5py opened junk.h5")
except OSError as e:
    reason = str(e)
want = (f"agon_h5: warning: skipping sweep/junk.h5: {reason}\n"
        "agon_h5: warning: skipping sweep/other.h5: not an agon run log (no format_version attribute)\n")
assert err.getvalue() == want, (err.getvalue(), want)

rows = agon_h5.sweep_rows(runs, "mode_coverage", "modes", keys=["loss.plugin", "dataset.layout"])
assert [list(r) for r in rows] == [["path", "run_id", "seed", "status", "steps_done", "loss.plugin",
                                    "dataset.layout", "mode_coverage/modes"]] * 2, rows
for row, loss in zip(rows, ("nonsaturating", "minimax")):
    with h5py.File(row["path"], "r") as f:
        assert row["run_id"] == f.attrs["run_id"] and row["seed"] == f.attrs["seed"]
        assert row["status"] == "completed" and row["steps_done"] == 200
        assert row["mode_coverage/modes"] == f["metrics/mode_coverage/modes"][-1]
    assert row["loss.plugin"] == loss and row["dataset.layout"] == "ring"
assert [r["seed"] for r in rows] == [5, 7]
all_cols = agon_h5.sweep_rows(runs, "mode_coverage")
assert [k for k in all_cols[0] if "/" in k] == ["mode_coverage/modes", "mode_coverage/high_quality", "mode_coverage/kl"]
none = agon_h5.sweep_rows(runs, "no_such_metric", "x")
assert all(np.isnan(r["no_such_metric/x"]) for r in none)
EOF

# ---- the command line ---------------------------------------------------------------------
# The expected lines take the last losses from `agon show`.
line() { # FILE -> "FILE: completed, 200/200 steps, loss_d X loss_g Y"
  "$AGON" show "$1" --no-config |
    sed -n 's/^last step 200: loss_d \([^ ]*\)  loss_g \([^ ]*\) .*/\1 \2/p' |
    { read -r d g; echo "$1: completed, 200/200 steps, loss_d $d loss_g $g"; }
}
want_a=$(line sweep/a.h5)
want_b=$(line sweep/b.h5)
junk_reason=$("$PY" -c "
import h5py
try: h5py.File('sweep/junk.h5', 'r', swmr=True)
except OSError as e: print(e)")
expect "CLI on the sweep folder" 0 "agon_h5: warning: skipping sweep/junk.h5: $junk_reason
agon_h5: warning: skipping sweep/other.h5: not an agon run log (no format_version attribute)" -- "$PY" "$MOD" sweep
if [ "$(cat out.txt)" = "$want_a
$want_b" ]; then ok "CLI prints one line per run: $want_a"; else bad "CLI lines: $(cat out.txt), expected $want_a / $want_b"; fi
expect "CLI on one run" 0 "" -- "$PY" "$MOD" sweep/b.h5
[ "$(cat out.txt)" = "$want_b" ] && ok "CLI line of one run" || bad "CLI one run: '$(cat out.txt)', expected '$want_b'"
expect "CLI on a non-agon HDF5 file" 1 "agon_h5: sweep/other.h5: not an agon run log (no format_version attribute)" -- "$PY" "$MOD" sweep/other.h5
expect "CLI on a missing file" 1 "*" -- "$PY" "$MOD" nope.h5
grep -q "^agon_h5: nope.h5: .*No such file" err.txt && ok "missing file named: $(cat err.txt)" || bad "missing file: $(cat err.txt)"
expect "CLI on a folder without logs" 1 "agon_h5: empty: no readable agon run logs (*.h5) in this folder" -- "$PY" "$MOD" empty
expect "CLI without arguments" 2 "usage: agon_h5.py RUN.h5|DIR
prints one line per run log: path, status, steps done/planned, last losses" -- "$PY" "$MOD"

# ---- a crashed log: unequal lengths are cut to the common prefix --------------------------------
cp sweep/a.h5 cut.h5
"$PY" - <<'EOF'
import h5py
with h5py.File("cut.h5", "r+") as f:
    f["scalars/loss_g"].resize((190,))
    f["scalars/step"].resize((195,))
    f["samples/x"].resize((3, 128, 2))
    f["metrics/mode_coverage/kl"].resize((2,))
    f["metrics/mode_coverage/tensors/step"].resize((1,))
EOF
pycheck "unequal lengths: every column of a group cut to its shortest, values unchanged" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import numpy as np, agon_h5
cut, full = agon_h5.load_run("cut.h5"), agon_h5.load_run("sweep/a.h5")
for group, n in (("scalars", 190), ("samples", 3)):
    assert {k: len(v) for k, v in cut[group].items()} == {k: n for k in full[group]}, (group, cut[group])
    for k, v in cut[group].items():
        assert v.tobytes() == full[group][k][:n].tobytes(), (group, k)
m = cut["metrics"]["mode_coverage"]
assert {k: len(v) for k, v in m.items()} == {"step": 2, "modes": 2, "high_quality": 2, "kl": 2}, m
assert len(cut["metric_tensors"]["mode_coverage"]["histogram"]) == 1
EOF

# ---- a newer format version: read, with a warning ---------------------------------------
cp sweep/a.h5 v2.h5
"$PY" -c "import h5py; h5py.File('v2.h5', 'r+').attrs['format_version'] = 2"
expect "a newer format_version is read with a warning" 0 \
  "agon_h5: warning: v2.h5: format_version 2 is not one this reader knows (it knows 1); reading what it recognises" -- \
  "$PY" "$MOD" v2.h5
[ "$(cat out.txt)" = "v2.h5${want_a#sweep/a.h5}" ] && ok "newer format_version: the same line as a.h5's" ||
  bad "newer format_version: '$(cat out.txt)'"

# ---- a log being written, then killed -----------------------------------------------------
"$AGON" run f.yaml -o live.h5 --progress none --set train.steps=1000000 \
  --set log.flush_seconds=0.05 >live.out 2>live.err &
WRITER=$!
trap 'kill -9 "$WRITER" 2>/dev/null' EXIT
pycheck "a log being written loads (SWMR): status running, steps 1..n" <<EOF
import os, sys, time
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import h5py, numpy as np, agon_h5
deadline, last = time.time() + 120, "too few rows"
while True:
    try:
        run = agon_h5.load_run("live.h5")
        if (len(run["scalars"].get("step", [])) >= 120 and
                len(run["metrics"].get("mode_coverage", {}).get("step", [])) >= 2):
            break
    except (OSError, ValueError) as e:
        last = e
    if time.time() > deadline:
        raise SystemExit(f"no rows within 120 s: {last}")
    time.sleep(0.2)
try:
    h5py.File("live.h5", "r").close()
    raise SystemExit("a plain open succeeded, so the SWMR path is not tested")
except OSError:
    pass
a, s = run["attrs"], run["scalars"]
n = len(s["step"])
assert a["status"] == "running" and a["steps_done"] == 0 and a["pid"] == $WRITER, a
assert np.array_equal(s["step"], np.arange(1, n + 1))
assert all(len(v) == n for v in s.values())
assert agon_h5.steps_done(run) == n and agon_h5.writer_state(run) == "alive"
m = run["metrics"]["mode_coverage"]["step"]
# Groups are read one after another while the writer goes on, so a
# metric's last step may be ahead of the scalars' as read: not compared.
assert len(m) >= 2 and np.array_equal(m, 50 * np.arange(1, len(m) + 1)), m
ss = run["samples"]["step"]
assert np.array_equal(ss, 50 * np.arange(len(ss))) and len(run["samples"]["x"]) == len(ss), ss
line = agon_h5.summary_line(run)
assert line.startswith(f"live.h5: running (pid $WRITER), {n}/1000000 steps, loss_d "), line
assert run["final"] == {"generator": {}, "discriminator": {}}
np.savez("live_first.npz", **s)
EOF
{ kill -9 "$WRITER"; wait "$WRITER"; } 2>/dev/null
trap - EXIT
pycheck "the killed writer's log loads: status running, steps 1..m, earlier rows unchanged" <<EOF
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import h5py, numpy as np, agon_h5
try:
    h5py.File("live.h5", "r").close()
    raise SystemExit("a plain open succeeded on the killed log")
except OSError:
    pass
run = agon_h5.load_run("live.h5")
first = np.load("live_first.npz")
a, s = run["attrs"], run["scalars"]
m = len(s["step"])
assert a["status"] == "running" and "end_time" not in a, a
assert m >= len(first["step"]) and np.array_equal(s["step"], np.arange(1, m + 1)), m
for k in first.files:
    assert s[k][: len(first[k])].tobytes() == first[k].tobytes(), k
assert agon_h5.writer_state(run) == "gone" and agon_h5.steps_done(run) == m
line = agon_h5.summary_line(run)
want = f"live.h5: interrupted (its writer, pid $WRITER, is gone), {m}/1000000 steps, loss_d {s['loss_d'][-1]:.4f} loss_g {s['loss_g'][-1]:.4f}"
assert line == want, (line, want)
EOF
expect "CLI on the killed log" 0 "" -- "$PY" "$MOD" live.h5
grep -q "^live.h5: interrupted (its writer, pid $WRITER, is gone), [0-9]*/1000000 steps, loss_d [-0-9.]* loss_g [-0-9.]*$" out.txt &&
  ok "CLI line of the killed log: $(cat out.txt)" || bad "CLI line of the killed log: $(cat out.txt)"

# ---- pandas ----------------------------------------------------------------------------------
if "$PY" -c "import pandas" 2>/dev/null; then
  pycheck "pandas: the frames hold load_run's arrays" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import numpy as np, agon_h5
runs = agon_h5.load_sweep("sweep")
df = agon_h5.scalars_frame(runs[0])
assert list(df.columns) == list(runs[0]["scalars"]) and df.columns[0] == "step"
for k, v in runs[0]["scalars"].items():
    assert df[k].to_numpy().tobytes() == v.tobytes(), k
mf = agon_h5.metrics_frame(runs[1], "mode_coverage")
assert list(mf.columns) == ["step", "modes", "high_quality", "kl"] and mf["step"].tolist() == [50, 100, 150, 200]
sf = agon_h5.sweep_frame(runs, "mode_coverage", "modes", keys=["loss.plugin"])
assert sf["loss.plugin"].tolist() == ["nonsaturating", "minimax"] and len(sf) == 2
assert sf["mode_coverage/modes"].tolist() == [r["metrics"]["mode_coverage"]["modes"][-1] for r in runs]
EOF
else
  pycheck "no pandas: each frame function raises the ImportError that says what to do" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import agon_h5
run = agon_h5.load_run("sweep/a.h5")
try:
    import pandas
    raise SystemExit("pandas imports after all")
except ImportError as e:
    reason = str(e)
for name, call in (("scalars_frame", lambda: agon_h5.scalars_frame(run)),
                   ("metrics_frame", lambda: agon_h5.metrics_frame(run, "mode_coverage")),
                   ("sweep_frame", lambda: agon_h5.sweep_frame([run], "mode_coverage", "modes"))):
    try:
        call()
        raise SystemExit(f"{name} returned without pandas")
    except ImportError as e:
        want = (f"agon_h5.{name} needs pandas, which {sys.executable} cannot import ({reason}); "
                "install it (Debian: apt-get install python3-pandas) or use the dicts of numpy "
                "arrays that load_run returns")
        assert str(e) == want, (str(e), want)
EOF
fi

# The frames' contents, whatever this Python has: a stand-in pandas records
# what each function hands to DataFrame.
mkdir -p stub
cat >stub/pandas.py <<'EOF'
class DataFrame:
    def __init__(self, data, columns=None):
        self.data, self.columns = data, columns
EOF
pycheck "frames (stand-in pandas): columns in order, load_run's arrays, sweep rows" <<'EOF'
import os, sys
sys.path.insert(0, "stub")
sys.path.insert(0, os.environ["AGON_H5_DIR"])
import agon_h5
runs = agon_h5.load_sweep("sweep")
df = agon_h5.scalars_frame(runs[0])
assert list(df.data) == list(runs[0]["scalars"]) and list(df.data)[0] == "step"
assert all(df.data[k] is v for k, v in runs[0]["scalars"].items())
mf = agon_h5.metrics_frame(runs[1], "mode_coverage")
assert mf.data == runs[1]["metrics"]["mode_coverage"]
try:
    agon_h5.metrics_frame(runs[1], "fid")
    raise SystemExit("metrics_frame accepted a missing metric")
except KeyError as e:
    assert e.args[0] == "sweep/b.h5 has no table for metric 'fid' (metrics with a table: mode_coverage)", e.args[0]
sf = agon_h5.sweep_frame(runs, "mode_coverage", "modes", keys=["loss.plugin"])
assert sf.columns == ["path", "run_id", "seed", "status", "steps_done", "loss.plugin", "mode_coverage/modes"], sf.columns
assert sf.data == agon_h5.sweep_rows(runs, "mode_coverage", "modes", keys=["loss.plugin"])
assert agon_h5.sweep_frame([]).columns == ["path", "run_id", "seed", "status", "steps_done"]
EOF

echo
echo "e2e_agon_h5: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
