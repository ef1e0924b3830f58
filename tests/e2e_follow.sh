#!/usr/bin/env bash
# agon show --follow: a run's scalars and metric values appear while its
# writer flushes them, in step order, and following ends by itself with
# the final status once the writer is done.
# usage: e2e_follow.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
T=$(pwd)/tmp_e2e_follow
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

# The writer waits at step 20000 (the probe_pause metric) until the test
# has seen rows appear, so the check does not depend on how fast the
# machine trains: the events are observed, never waited for by the clock.
cat >fo.yaml <<YAML
base: $SRC/tests/experiments/tiny_ring.yaml
seed: 2
train: {steps: 40000}
log: {every: 1000, samples_every: 0, flush_seconds: 0.1}
metrics:
  - {plugin: mode_coverage, every: 10000, n_samples: 400}
  - {plugin: probe_pause, every: 20000, reached: $T/reached, go: $T/go, timeout: 120}
YAML
"$AGON" run fo.yaml -o fo.h5 --progress none --plugin-path "$BUILD/tests/probes" >/dev/null 2>run.err &
writer=$!
# Follow as soon as the log is live (a bounded wait for an event).
for _ in $(seq 1 600); do [ -s fo.h5 ] && break; sleep 0.05; done
timeout 120 "$AGON" show --follow fo.h5 >follow.txt 2>follow.err &
follower=$!
for _ in $(seq 1 1200); do [ -e reached ] && break; sleep 0.05; done
# The writer is paused at step 20000 and its earlier rows were flushed
# (every 0.1 s); the follower polls every 0.5 s.
seen_live=0
for _ in $(seq 1 600); do
  seen_live=$(grep -cE '^step [0-9]+: ' follow.txt)
  [ "$seen_live" -ge 1 ] && break
  sleep 0.05
done
kill -0 "$writer" 2>/dev/null && writer_was_alive=1 || writer_was_alive=0
touch go
wait "$writer"
wait "$follower"
rc=$?
if [ -e reached ] && [ "$writer_was_alive" = 1 ] && [ "$seen_live" -ge 1 ]; then
  ok "new steps appear while the run is written ($seen_live lines while the writer waited at step $(cat reached))"
else bad "new steps appear while the run is written (paused: $([ -e reached ] && echo yes || echo no), writer alive: $writer_was_alive, lines: $seen_live; $(cat run.err))"; fi
if [ "$rc" = 0 ] && [ ! -s follow.err ]; then ok "following ends by itself when the run ends"
else bad "following ended with exit $rc: $(cat follow.err)"; fi
if head -1 follow.txt | grep -qE "^fo.h5: running \(pid $writer\), [0-9]+ steps so far$"; then ok "first line: running with the writer's pid"
else bad "first line: $(head -1 follow.txt)"; fi
if [ "$(tail -1 follow.txt | sed 's/, [0-9]* s$//')" = "fo.h5: completed, 40000/40000 steps" ]; then ok "last line: the final status"
else bad "last line: $(tail -1 follow.txt)"; fi
/usr/bin/python3 - <<'PY' && ok "every logged step once, in order, up to 40000; every metric value" || bad "every logged step once, in order: $(grep -E 'step' follow.txt | head -3)"
import re, sys
steps = [int(m.group(1)) for m in re.finditer(r"^(?:last )?step (\d+): ", open("follow.txt").read(), re.M)]
metrics = [int(m.group(1)) for m in re.finditer(r"^metric mode_coverage @ step (\d+): modes", open("follow.txt").read(), re.M)]
first = steps[0]
ok = steps == list(range(first, 40001, 1000)) and metrics[-1] == 40000 and metrics == sorted(set(metrics))
sys.exit(0 if ok else 1)
PY
expect "--follow takes one log" 2 "agon show: --follow follows one run log; usage: agon show [--no-config] RUN.h5... | agon show --follow [--wait SECONDS] RUN.h5" -- \
  "$AGON" show --follow fo.h5 fo.h5
# A finished log: its last values and status, then the end.
expect "--follow of a finished run" 0 "" -- timeout 20 "$AGON" show --follow fo.h5
if [ "$(wc -l <out.txt)" -ge 3 ] && grep -q "^last step 40000: " out.txt; then ok "a finished run: last values and status"
else bad "a finished run: $(cat out.txt)"; fi

echo
echo "e2e_follow: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
