#!/usr/bin/env bash
# The Slurm job script of agon sweep, with a stand-in sbatch that runs every
# task of the array with bash as a node would: a control character in any
# value that reaches the script (the slurm: map, the flags, the folder, the
# sweep file's name) is refused before anything is written; folder, file
# and value names with spaces, quotes, $(...) and backticks are data in the
# script, never commands, and their runs complete.
# usage: e2e_sweep_jobscript.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_sweep_jobscript
rm -rf "$T" && mkdir -p "$T/bin"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

# sbatch --parsable SCRIPT: keeps the script's path in $T/submitted and
# runs its tasks one after the other in the folder of the submission, as
# Slurm does; squeue knows no job.
cat >bin/sbatch <<'SH'
#!/usr/bin/env bash
script=${!#}
echo "$script" >>"$FAKE_SLURM/submitted"
last=$(sed -n 's/^#SBATCH --array=0-\([0-9]*\).*/\1/p' "$script")
for i in $(seq 0 "${last:-0}"); do
  SLURM_ARRAY_JOB_ID=4242 SLURM_ARRAY_TASK_ID=$i bash "$script" >>"$FAKE_SLURM/tasks.out" 2>&1
done
echo 4242
SH
printf '#!/bin/sh\nexit 0\n' >bin/squeue
chmod +x bin/sbatch bin/squeue
export PATH="$T/bin:$PATH" FAKE_SLURM=$T

TINY="$SRC/tests/experiments/tiny_ring.yaml"
SET='set: {train.steps: 20, metrics: [], log.samples_every: 0}'
# No marker file anywhere under this folder, and no job script written.
untouched() { [ -z "$(find "$T" -name pwned)" ] && [ ! -e submitted ]; }

# ---- a control character is refused, naming where it came from -------------
ONE_LINE='values written into the Slurm job script must be printable text on one line'
# refused NAME STDERR [-C DIR] ARGS...: agon sweep ARGS --backend slurm,
# run in DIR.
refused() {
  local name=$1 want=$2
  shift 2
  local dir=.
  [ "$1" = -C ] && dir=$2 && shift 2
  expect "$name" 3 "$want" -- env -C "$dir" "$AGON" sweep "$@" --backend slurm
  untouched && ok "$name: nothing written, nothing run" || bad "$name: a script was written or run"
  # Each case on its own, whatever the one before left.
  rm -f submitted && find "$T" -name pwned -exec rm -rf {} +
}
sweep_file() { printf 'experiment: %s\n%s\n%s\n' "$TINY" "$SET" "$1" >"$2"; }

# One sweep file per row: its name, its third line, and where the refusal
# points (line:col: key) with the byte it names.
while IFS='|' read -r name line where byte; do
  sweep_file "$line" "$name.yaml"
  refused "$name.yaml: $where" "$name.yaml:$where: holds a control character ($byte); $ONE_LINE" "$name.yaml" </dev/null
done <<ROWS
job_name|slurm: {job_name: "x\ntouch $T/pwned"}|3:19: slurm.job_name|0x0a
partition|slurm: {partition: "debug\ntouch $T/pwned"}|3:20: slurm.partition|0x0a
time|slurm: {time: "10\ntouch $T/pwned"}|3:15: slurm.time|0x0a
sbatch|slurm: {sbatch: ["--mem=100", "--comment=x\ntouch $T/pwned"]}|3:31: slurm.sbatch[1]|0x0a
tab|slurm: {partition: "deb\tug"}|3:20: slurm.partition|0x09
cr|slurm: {time: "10\r"}|3:15: slurm.time|0x0d
del|slurm: {job_name: "x\x7f"}|3:19: slurm.job_name|0x7f
out|out: "o\ntouch pwned #"|3:6: out|0x0a
ROWS
[ -z "$(find "$T" -name 'o?touch*')" ] && ok "out: with a newline: no folder made" || bad "out: the folder was made"

sweep_file '' plain.yaml
refused "--partition with a newline" "agon sweep: --partition holds a control character (0x0a); $ONE_LINE" \
  plain.yaml -o f1 --partition $'debug\ntouch '"$T"'/pwned'
refused "--time with a newline" "agon sweep: --time holds a control character (0x0a); $ONE_LINE" \
  plain.yaml -o f2 --time $'10\ntouch '"$T"'/pwned'
refused "--sbatch with a newline" "agon sweep: --sbatch holds a control character (0x0a); $ONE_LINE" \
  plain.yaml -o f3 --sbatch --mem=100 --sbatch $'--comment=x\ntouch '"$T"'/pwned'
refused "-o with a newline" "agon sweep: -o holds a control character (0x0a); $ONE_LINE" \
  plain.yaml -o $'p\ntouch pwned #'
NL_FILE=$'nl\ntouch pwned\n.yaml'
sweep_file '' "$NL_FILE"
refused "a sweep file name with a newline" \
  "agon sweep: the sweep file's name holds a control character (0x0a); $ONE_LINE" "$NL_FILE" -o nl
rm -f "$NL_FILE"
CWD=$'c\ntouch pwned'
mkdir "$CWD"
refused "a current directory with a newline" \
  "agon sweep: the absolute path of f4 holds a control character (0x0a); $ONE_LINE" -C "$CWD" ../plain.yaml -o f4
[ ! -e "$CWD/f4" ] && ok "a current directory with a newline: no folder made" || bad "the folder was made in $CWD"

# ---- names that a shell would run are data -----------------------------------
# The sweep file, its experiment, a plugin folder, the sweep's folder and a
# value, each with a space, a single quote, $(...) and backticks.
shell_syntax_sweep "$SRC"
mkdir "plugins $SHELL_SYNTAX"
cp "$BUILD"/tests/probes/* "plugins $SHELL_SYNTAX/"
expect "a sweep whose names hold shell syntax, submitted" 0 "" -- \
  "$AGON" sweep "$SHELL_SWEEP" --backend slurm --plugin-path "plugins $SHELL_SYNTAX"
OUT="o $SHELL_SYNTAX"
grep -q "^agon sweep: submitted 2 of 2 runs as Slurm job array 4242 " out.txt && [ "$(wc -l <submitted)" = 1 ] &&
  ok "one job array of 2 tasks" || bad "submission: $(cat out.txt) $(cat tasks.out 2>/dev/null)"
[ -z "$(find "$T" -name pwned)" ] && ok "no command in a name ran" || bad "a name ran as a command: $(find "$T" -name pwned)"
exits=$(cat "$OUT"/*.exit 2>/dev/null | sort | tr '\n' ' ')
[ "$exits" = "0 0 " ] && ok "both tasks exited 0 in their .exit records" || bad "exit records: '$exits'; $(cat tasks.out)"
expect "the runs are complete" 0 "" -- "$AGON" sweep "$SHELL_SWEEP" --dry-run --plugin-path "plugins $SHELL_SYNTAX"
grep -qF "2 runs in $T/$OUT: 2 completed, 0 diverged, 0 running, 0 to run" out.txt &&
  ok "dry run: 2 completed" || bad "dry run: $(cat out.txt)"
"$PY" - "$OUT" "$SHELL_SYNTAX" <<'PY' && ok "the value with shell syntax reached the runs' configs as written" || bad "configs"
import glob, sys, h5py, yaml
logs = sorted(glob.glob(glob.escape(sys.argv[1]) + "/*.h5"))
assert len(logs) == 2, logs
for p in logs:
    with h5py.File(p, "r") as f:
        c = yaml.safe_load(f["config"][()].decode())
        assert c["description"] == sys.argv[2], c["description"]
PY
grep -qxF "#SBATCH --output=\"$T/$OUT/slurm/%A_%a.out\"" "$(cat submitted)" &&
  ok "the output path is one quoted sbatch value" || bad "#SBATCH lines: $(grep '^#SBATCH' "$(cat submitted)")"

echo "e2e_sweep_jobscript: $pass passed, $fail failed"
[ $fail = 0 ]
