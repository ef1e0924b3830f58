#!/usr/bin/env bash
# A plugin built out of tree against an installed agon, as a researcher
# would: install agon into a scratch prefix, build tests/out_of_tree with
# find_package(agon) and again by hand with pkg-config, and check that the
# installed agon finds its own libagon, its own plugins and the new one.
#
# usage: bash e2e_out_of_tree.sh AGON_BIN SRC_DIR BUILD_DIR   (from ctest)
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 AGON_BIN SRC_DIR BUILD_DIR" >&2
    exit 2
fi
AGON_BUILD_BIN=$1
SRC=$2
BUILD=$3
TMP=$(pwd)/tmp_e2e_out_of_tree
PREFIX=$TMP/prefix
rm -rf "$TMP"
mkdir -p "$TMP"

fail() {
    echo "e2e_out_of_tree: FAILED: $*" >&2
    exit 1
}

# Runs a command with its output in $TMP/<name>.log; shows the log on failure.
run_logged() {
    local name=$1
    shift
    if ! "$@" >"$TMP/$name.log" 2>&1; then
        cat "$TMP/$name.log" >&2
        fail "$name: $*"
    fi
}

expect_in() {
    local file=$1 text=$2
    grep -qF -- "$text" "$file" || { cat "$file" >&2; fail "'$text' not in $file"; }
}

# ---- the build tree's agon uses the build tree's plugins ------------------------
run_logged plugins_build "$AGON_BUILD_BIN" plugins
expect_in "$TMP/plugins_build.log" "  file: $BUILD/plugins/adam.so"

# ---- install -----------------------------------------------------------------
run_logged install cmake --install "$BUILD" --prefix "$PREFIX"
# Everything must land under the prefix: an absolute DESTINATION would
# write into the system (and not be found by the relocated installation).
outside=$(grep -v "^$PREFIX/" "$BUILD/install_manifest.txt" || true)
[ -z "$outside" ] || fail "installed outside $PREFIX: $outside"
AGON=$PREFIX/bin/agon
[ -x "$AGON" ] || fail "no installed program $AGON"
PC=$(find "$PREFIX" -name agon.pc -print -quit)
[ -n "$PC" ] || fail "no agon.pc installed under $PREFIX"
LIBDIR=$(dirname "$(dirname "$PC")")
[ -f "$LIBDIR/agon/plugins/adam.so" ] || fail "plugins not installed in $LIBDIR/agon/plugins"

# The installed program must use the installed libagon (its RUNPATH), not
# the build tree's, and without LD_LIBRARY_PATH.
unset LD_LIBRARY_PATH
LIBAGON=$(ldd "$AGON" | awk '/libagon/ {print $3}')
if [ -z "$LIBAGON" ] || [ ! -e "$LIBAGON" ]; then
    fail "installed agon does not find libagon"
fi
case "$(realpath "$LIBAGON")" in
    "$(realpath "$LIBDIR")"/*) ;;
    *) fail "installed agon resolves libagon to '$LIBAGON', not to $LIBDIR" ;;
esac

# ---- the shipped experiments, run from the installation ------------------------
# Run from $TMP so that nothing reads the source tree's experiments/ by a
# relative path; the installed files must stand on their own.
EXP=$PREFIX/share/agon/experiments
[ -f "$EXP/ring8.yaml" ] || fail "no installed experiment $EXP/ring8.yaml"
(cd "$TMP" && run_logged validate_installed "$AGON" validate "$EXP/ring8.yaml")
expect_in "$TMP/validate_installed.log" "plugin: gaussian_mixture"
# base: ../ring8.yaml and a sweep's experiment: ../ring8.yaml only resolve
# when the subfolders are installed where they are in the source tree.
(cd "$TMP" && run_logged validate_installed_base "$AGON" validate "$EXP/repro/saturation.yaml")
(cd "$TMP" && run_logged sweep_installed "$AGON" sweep --dry-run \
    "$EXP/sweeps/loss_comparison.yaml" -o "$TMP/sweep")
expect_in "$TMP/sweep_installed.log" "20 runs in $TMP/sweep"
(cd "$TMP" && run_logged run_installed "$AGON" run "$EXP/ring8.yaml" \
    --set train.steps=20 -o "$TMP/ring8.h5" --progress none)
[ -s "$TMP/ring8.h5" ] || fail "agon run of the installed ring8.yaml wrote no $TMP/ring8.h5"

# ---- build the plugin with CMake against the installation ----------------------
run_logged configure cmake -S "$SRC/tests/out_of_tree" -B "$TMP/build" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Debug
run_logged build cmake --build "$TMP/build" -j1
HINGE=$TMP/build/plugins/hinge.so
[ -f "$HINGE" ] || fail "the out-of-tree build made no $HINGE"

# The installed agon lists its installed plugins and the new one, and
# nothing from the build tree.
run_logged plugins "$AGON" plugins --plugin-path "$TMP/build/plugins"
expect_in "$TMP/plugins.log" "hinge 1.0.0: Hinge GAN loss, built out of tree"
expect_in "$TMP/plugins.log" "  loss hinge: "
expect_in "$TMP/plugins.log" "  file: $HINGE"
expect_in "$TMP/plugins.log" "  file: $LIBDIR/agon/plugins/adam.so"
if grep -qF "$BUILD/plugins" "$TMP/plugins.log"; then
    cat "$TMP/plugins.log" >&2
    fail "the installed agon searched the build tree's plugins"
fi

run_logged plugins_hinge "$AGON" plugins hinge --plugin-path "$TMP/build/plugins"
expect_in "$TMP/plugins_hinge.log" "loss hinge: D: max(0, 1 - l_r) + max(0, 1 + l_f); G: -l_f"
expect_in "$TMP/plugins_hinge.log" "sha256:  $(sha256sum "$HINGE" | cut -d' ' -f1)"

# ---- the same plugin by hand with pkg-config -----------------------------------
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$PC")
FLAGS=$(pkg-config --cflags --libs agon) || fail "pkg-config --cflags --libs agon"
PLUGINDIR=$(pkg-config --variable=plugindir agon)
[ "$(realpath "$PLUGINDIR")" = "$(realpath "$LIBDIR/agon/plugins")" ] ||
    fail "pkg-config plugindir is '$PLUGINDIR', not $LIBDIR/agon/plugins"
mkdir -p "$TMP/pc"
# shellcheck disable=SC2086  # FLAGS is a list of words
run_logged pkg_config_cc cc -std=c11 -Wall -Wextra -Werror -shared -fPIC \
    -fvisibility=hidden -Wl,--no-undefined \
    "$SRC/tests/out_of_tree/hinge.c" $FLAGS -o "$TMP/pc/hinge.so"
run_logged plugins_pc "$AGON" plugins hinge --plugin-path "$TMP/pc"
expect_in "$TMP/plugins_pc.log" "  file:    $TMP/pc/hinge.so"

# ---- install the plugin next to agon's own and train with it -------------------
run_logged install_hinge cmake --install "$TMP/build" --prefix "$PREFIX"
outside=$(grep -v "^$PREFIX/" "$TMP/build/install_manifest.txt" || true)
[ -z "$outside" ] || fail "plugin installed outside $PREFIX: $outside"
[ -f "$LIBDIR/agon/plugins/hinge.so" ] ||
    fail "cmake --install of the plugin did not put it in $LIBDIR/agon/plugins"
run_logged plugins_installed "$AGON" plugins hinge
expect_in "$TMP/plugins_installed.log" "  file:    $LIBDIR/agon/plugins/hinge.so"

if "$AGON" --help | grep -q '^  run '; then
    (cd "$TMP" && run_logged run "$AGON" run "$SRC/experiments/ring8.yaml" \
        --set loss.plugin=hinge --set train.steps=20 -o "$TMP/x.h5" --quiet)
    [ -s "$TMP/x.h5" ] || fail "agon run wrote no $TMP/x.h5"
fi

echo "e2e_out_of_tree: ok"
