# Helpers shared by the end-to-end scripts (sourced, not a test itself):
# pass/fail counters, ok/bad, and expect, which checks a command's exit
# code and its stderr word for word.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "[  OK  ] $1"; }
bad() { fail=$((fail + 1)); echo "[ FAIL ] $1"; }

# expect NAME EXIT_CODE EXPECTED_STDERR -- command...
# Runs the command; checks its exit code and that stderr is exactly the
# expected text (or anything when EXPECTED_STDERR is '*').
expect() {
  local name=$1 code=$2 want=$3
  shift 4
  "$@" >out.txt 2>err.txt
  local rc=$?
  local got
  got=$(cat err.txt)
  if [ "$rc" != "$code" ]; then
    bad "$name: exit $rc, expected $code; stderr: $got"
  elif [ "$want" != '*' ] && [ "$got" != "$want" ]; then
    bad "$name: stderr was
  $got
expected
  $want"
  else
    ok "$name"
  fi
}

# chromium_page ABS_PATH.html ARGS...: loads a local page in headless
# Chromium (as root, without network, in a fresh profile) with ARGS such as
# --dump-dom or --screenshot=PNG; its stderr goes to chromium.err.
chromium_page() {
  local page=$1
  shift
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$PWD/chromium.XXXXXX")" --window-size=1280,4000 "$@" \
    "file://$page" 2>>chromium.err
}

# A name that a shell would run: a space, single quotes, $(...) and
# backticks, whose commands make a file `pwned` where they run.
SHELL_SYNTAX="a b 'c' \$(touch pwned) \`touch pwned\`"

# shell_syntax_sweep SOURCE_DIR: writes, in this folder, a sweep of two
# short runs whose file, experiment, folder (out: "o $SHELL_SYNTAX") and a
# value (description) hold $SHELL_SYNTAX; its path is $SHELL_SWEEP.
shell_syntax_sweep() {
  local d="d $SHELL_SYNTAX"
  mkdir -p "$d"
  cp "$1/tests/experiments/tiny_ring.yaml" "$d/exp $SHELL_SYNTAX.yaml"
  SHELL_SWEEP="$d/s $SHELL_SYNTAX.yaml"
  cat >"$SHELL_SWEEP" <<YAML
experiment: "exp $SHELL_SYNTAX.yaml"
out: "o $SHELL_SYNTAX"
set:
  train.steps: 20
  metrics: []
  log.samples_every: 0
  description: "$SHELL_SYNTAX"
grid:
  seed: [1, 2]
YAML
}
