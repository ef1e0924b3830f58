#!/usr/bin/env bash
# Who may write a log path, and what readers see meanwhile: a run's claim
# on its path (docs/reliability.md, "Claims"), --overwrite, and readers
# racing a writer's last milliseconds.
#
#  1. --overwrite of a log whose writer is alive is refused; a writer whose
#     path was replaced finishes its own file and never writes into the
#     log now at the path; of two runs claiming one path one is refused.
#  2. a kill during setup leaves nothing in the way: show and --resume
#     say what it is, a plain rerun takes the path, no .partial stays.
#  3. --overwrite replaces only a file agon wrote.
#  4. a reader waits out a writer's lock instead of failing.
#  5. show --follow waits, within a bound, for a log that is not there yet.
#
# usage: e2e_claims.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_claims
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"
PROBES=(--plugin-path "$BUILD/tests/probes")

# hold_lock FILE KIND SECONDS: holds a lock on FILE in the background the
# way a run does (KIND ofd: agon's claim, an OFD write lock; flock: HDF5's
# exclusive lock of a writer recording its final status), and prints the
# holder's pid once it holds it.
hold_lock() {
    "$PY" - "$1" "$2" "$3" >/dev/null 2>&1 <<'EOF' &
import fcntl, os, struct, sys, time
path, kind, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
fd = os.open(path, os.O_RDWR)
if kind == "ofd":
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (x86-64 layout)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
else:
    fcntl.flock(fd, fcntl.LOCK_EX)
open(path + ".held", "w").close()
time.sleep(seconds)
EOF
    local holder=$!
    for _ in $(seq 1 400); do [ -e "$1.held" ] && break; sleep 0.025; done
    rm -f "$1.held"
    echo "$holder"
}

cat >r.yaml <<YAML
base: $SRC/tests/experiments/tiny_ring.yaml
seed: 3
train: {steps: 300}
log: {every: 10, samples_every: 0, flush_seconds: 0.05}
YAML
# The same run, paused at step 100 until the file `go` exists.
cat >paused.yaml <<YAML
base: $T/r.yaml
metrics:
  - {plugin: probe_pause, every: 100, reached: $T/reached, go: $T/go, timeout: 120}
YAML
wait_reached() {
    for _ in $(seq 1 2400); do [ -e reached ] && return 0; sleep 0.05; done
    bad "the paused run never reached its pause"
    return 1
}
status_line() { "$AGON" show --no-config "$1" 2>&1 | head -1; }

# ---- 1. a live writer keeps its log ------------------------------------------------------
rm -f reached go
"$AGON" run paused.yaml -o live.h5 --progress none "${PROBES[@]}" >/dev/null 2>live.err &
writer=$!
wait_reached
expect "--overwrite of a log being written" 2 "live.h5: still being written by pid $writer; stop that run first (Ctrl-C finishes its log as interrupted) or wait for it" -- \
  "$AGON" run r.yaml -o live.h5 --set seed=7 --set train.steps=20 --overwrite --progress none
# The path replaced under the writer (moved away, a new run written in
# its place): the writer finishes the file it has, now at moved.h5.
mv live.h5 moved.h5
"$AGON" run r.yaml -o live.h5 --set seed=7 --set train.steps=20 --progress none >/dev/null 2>new.err ||
  bad "a run at the freed path failed: $(cat new.err)"
touch go
wait "$writer" || bad "the paused writer failed: $(cat live.err)"
"$PY" - <<'EOF' && ok "a writer whose path was replaced finished its own file; the new log is untouched" || bad "the writer wrote into the log at its old path"
import h5py, sys
moved = h5py.File("moved.h5", "r")
new = h5py.File("live.h5", "r")
checks = [
    (moved.attrs["status"], "completed"), (int(moved.attrs["steps_done"]), 300),
    (int(moved.attrs["seed"]), 3), ("final" in moved, True),
    (new.attrs["status"], "completed"), (int(new.attrs["steps_done"]), 20),
    (int(new.attrs["steps_planned"]), 20), (int(new.attrs["seed"]), 7),
    (int(new["scalars/step"][-1]), 20),
]
bad = [(got, want) for got, want in checks if got != want]
if bad:
    print("mismatches:", bad, file=sys.stderr)
    sys.exit(1)
EOF

# Two runs replacing one log: the one that holds the claim (an OFD lock
# on the old file) goes on, the other is refused at once.
cp live.h5 kept.h5
holder=$(hold_lock live.h5 ofd 30)
expect "a second run replacing the same log" 2 "live.h5: another run is replacing this log right now; give each run its own output path (-o)" -- \
  "$AGON" run r.yaml -o live.h5 --overwrite --progress none
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
cmp -s live.h5 kept.h5 && ok "the refused run left the log alone" || bad "the refused run changed the log"
# ... and two runs started at once on it: at most one replaces it, and a
# run that exits 0 owns the log at the path.
for i in 1 2 3; do
    "$AGON" run r.yaml -o race.h5 --set seed=$((10 + i)) --set train.steps=30 --overwrite --progress none >/dev/null 2>race_a.err &
    a=$!
    "$AGON" run r.yaml -o race.h5 --set seed=$((20 + i)) --set train.steps=30 --overwrite --progress none >/dev/null 2>race_b.err &
    b=$!
    wait "$a"; ra=$?
    wait "$b"; rb=$?
    seed=$("$PY" -c "import h5py; print(int(h5py.File('race.h5','r').attrs['seed']))")
    for r in "$ra:$((10 + i)):race_a.err" "$rb:$((20 + i)):race_b.err"; do
        IFS=: read -r rc s errf <<<"$r"
        if [ "$rc" != 0 ] && ! grep -qx "race.h5: another run is \(replacing this log\|setting up its log here\) right now; give each run its own output path (-o)" "$errf" &&
           ! grep -qx "race.h5: still being written by pid [0-9]*; stop that run first (Ctrl-C finishes its log as interrupted) or wait for it" "$errf"; then
            bad "race $i: a run failed with: $(cat "$errf")"
        fi
    done
    # The log at the path is the last one to finish replacing it, whole.
    [ "$seed" = $((10 + i)) ] || [ "$seed" = $((20 + i)) ] || bad "race $i: the log has seed $seed"
    [ "$ra" = 0 ] || [ "$rb" = 0 ] || bad "race $i: neither run wrote the log ($ra, $rb)"
done
ok "racing --overwrite runs: every loser refused with one line, the log whole"

# ---- 2. a kill during setup ------------------------------------------------------------------
for phase in claimed building checkpointed; do
    AGON_TEST_KILL_AT=$phase "$AGON" run r.yaml -o k.h5 --progress none >/dev/null 2>&1
    rc=$?
    [ "$rc" = 137 ] || bad "$phase: the run was not killed (exit $rc)"
    [ -e k.h5 ] && [ ! -s k.h5 ] || bad "$phase: expected the empty claim at k.h5"
    expect "$phase: show of the claim left behind" 5 "k.h5: an empty file left by a run killed while setting up, before its first step; nothing was lost, and agon run may write a log here again (no --overwrite needed)" -- \
      "$AGON" show k.h5
    expect "$phase: --resume of it" 5 "k.h5: an empty file left by a run killed while setting up, before its first step; nothing was lost, and agon run may write a log here again (no --overwrite needed)" -- \
      "$AGON" run --resume k.h5 --progress none
    expect "$phase: a plain rerun takes the path" 0 "" -- "$AGON" run r.yaml -o k.h5 --progress none
    [ "$(status_line k.h5 | cut -d, -f1,2)" = "k.h5: completed, 300/300 steps" ] ||
        bad "$phase: rerun: $(status_line k.h5)"
    leftover=$(ls k.h5.*.partial 2>/dev/null)
    [ -z "$leftover" ] && ok "$phase: no .partial left after the rerun" || bad "$phase: left behind: $leftover"
    rm -f k.h5
done
# The same with --overwrite, and while the claim is held (a run setting up).
AGON_TEST_KILL_AT=building "$AGON" run r.yaml -o k.h5 --progress none >/dev/null 2>&1
expect "--overwrite of a left-behind claim" 0 "" -- "$AGON" run r.yaml -o k.h5 --overwrite --progress none
rm -f k.h5 && : >k.h5
holder=$(hold_lock k.h5 ofd 30)
expect "show of a path a run is setting up" 0 "" -- "$AGON" show k.h5
[ "$(cat out.txt)" = "k.h5: setting up: a run has claimed this path and has not started training yet" ] &&
  ok "show says the path is being set up" || bad "show said: $(cat out.txt)"
expect "a run on a path another run is setting up" 2 "k.h5: another run is setting up its log here right now; give each run its own output path (-o)" -- \
  "$AGON" run r.yaml -o k.h5 --progress none
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# ---- 3. --overwrite replaces only what agon wrote ----------------------------------------------
"$PY" -c "import h5py, numpy; h5py.File('data.h5', 'w')['x'] = numpy.arange(10)"
cp data.h5 data_copy.h5
expect "--overwrite of a data file" 5 "data.h5: is an HDF5 file that agon did not write (no format_version attribute), so --overwrite will not replace it; choose another output path (-o)" -- \
  "$AGON" run r.yaml -o data.h5 --overwrite --progress none
cmp -s data.h5 data_copy.h5 && ok "the data file is untouched" || bad "the data file was changed"

# ---- 4. a reader waits for a writer's lock ---------------------------------------------------
holder=$(hold_lock moved.h5 flock 0.6)
expect "show while the writer's lock is held" 0 "" -- "$AGON" show --no-config moved.h5
head -1 out.txt | grep -q "^moved.h5: completed, 300/300 steps" || bad "show said: $(head -1 out.txt)"
wait "$holder" 2>/dev/null
holder=$(hold_lock moved.h5 flock 0.6)
expect "export --csv while the writer's lock is held" 0 "" -- "$AGON" export moved.h5 --csv csv
wait "$holder" 2>/dev/null

# ---- 5. show --follow of a log that is not there yet ------------------------------------------
timeout 120 "$AGON" show --follow late.h5 >follow.txt 2>follow.err &
follower=$!
sleep 0.3
"$AGON" run r.yaml -o late.h5 --progress none >/dev/null 2>late.err || bad "late run: $(cat late.err)"
wait "$follower"
rc=$?
[ "$rc" = 0 ] && head -1 follow.txt | grep -qx "late.h5: waiting for the run's log to appear (at most 60 s)" &&
  tail -1 follow.txt | grep -q "^late.h5: completed, 300/300 steps" &&
  ok "--follow waited for the log and followed it to the end" || bad "--follow: exit $rc, output: $(cat follow.txt follow.err)"
expect "--follow gives up after --wait" 5 "never.h5: no run log appeared here within 0.2 s; check the path, start the run first, or wait longer with --wait SECONDS" -- \
  "$AGON" show --follow --wait 0.2 never.h5
expect "--wait without --follow" 2 "agon show: --wait only applies to --follow; usage: agon show [--no-config] RUN.h5... | agon show --follow [--wait SECONDS] RUN.h5" -- \
  "$AGON" show --wait 3 late.h5

echo
echo "e2e_claims: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
