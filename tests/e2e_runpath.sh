#!/usr/bin/env bash
# No agon binary loads a library from the directory it is started in.
#
# An empty RUNPATH entry (which CMake leaves in build-tree binaries it will
# install) or a relative one makes the loader look in the current
# directory, so a library planted there would run inside agon.  Checked two
# ways: every ELF file of the build tree that agon installs (the program,
# libagon, every plugin) has only absolute or $ORIGIN-relative RUNPATH
# entries, and a planted copy of every library the program and a plugin
# need, each writing a marker from its constructor, stays unloaded while
# `agon --version`, `agon plugins` and `agon validate` run in that folder.
#
# usage: bash e2e_runpath.sh AGON_BIN SRC_DIR BUILD_DIR   (from ctest)
set -euo pipefail
AGON=$1
SRC=$2
BUILD=$3
TMP=$(pwd)/tmp_e2e_runpath
rm -rf "$TMP"
mkdir -p "$TMP/plant"

fail() {
    echo "e2e_runpath: FAILED: $*" >&2
    exit 1
}

# ---- the RUNPATH of every installed kind of binary -----------------------------
libagon=$(dirname "$(readlink -f "$AGON")")/../lib/libagon.so.0
[ -e "$libagon" ] || libagon=$(find "$BUILD" -name 'libagon.so.0' -print -quit)
[ -e "$libagon" ] || fail "no libagon.so.0 in $BUILD"
checked=0
for f in "$AGON" "$libagon" "$BUILD"/plugins/*.so; do
    checked=$((checked + 1))
    readelf -d "$f" | grep -qE '\((RUNPATH|RPATH)\)' || continue
    runpath=$(readelf -d "$f" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]$/\2/p')
    # Split on ':' keeping empty fields (a trailing ':' is one).
    IFS=: read -r -a entries <<<"$runpath:sentinel"
    for e in "${entries[@]}"; do
        [ "$e" = sentinel ] && continue
        case "$e" in
        /* | '$ORIGIN' | '$ORIGIN/'*) ;;
        *) fail "$f: RUNPATH '$runpath' has the entry '$e', which the loader resolves against the current directory" ;;
        esac
    done
done
[ "$checked" -ge 3 ] || fail "checked only $checked files"

# ---- a planted library is not loaded -------------------------------------------
cat >"$TMP/plant.c" <<'EOF'
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void)
{
    int fd = open("PLANTED_RAN", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        (void)write(fd, "x\n", 2);
        close(fd);
    }
}
EOF
needed=$( (readelf -d "$AGON" "$libagon" "$BUILD/plugins/fashion_mnist.so" |
    sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; echo libagon.so.0) | sort -u)
for lib in $needed; do
    case "$lib" in
    libc.so.* | ld-linux*) continue ;;  # planting these would break any program
    esac
    cc -shared -fPIC -o "$TMP/plant/$lib" "$TMP/plant.c" || fail "cannot build the planted $lib"
done
[ -e "$TMP/plant/libpng16.so.16" ] || fail "agon no longer needs libpng16.so.16? needed: $needed"
cp "$SRC/tests/experiments/tiny_ring.yaml" "$TMP/plant/"
(
    cd "$TMP/plant"
    "$AGON" --version >/dev/null
    "$AGON" plugins >/dev/null
    "$AGON" validate tiny_ring.yaml >/dev/null
) || fail "agon failed in the folder with planted libraries"
[ ! -e "$TMP/plant/PLANTED_RAN" ] || fail "a library planted in the working directory was loaded"
echo "e2e_runpath: $checked binaries with clean RUNPATHs; $(echo "$needed" | wc -w) planted libraries stayed unloaded"
rm -rf "$TMP"
