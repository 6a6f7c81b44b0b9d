#!/usr/bin/env bash
# A Wine prefix for running the core's tests built for x86_64-pc-windows-gnu (issue 14):
# Debian's wine64 (Wine 8), a fresh WINEPREFIX under target/wine, and the bcryptprimitives.dll
# shim built here from scripts/wine/bcryptprimitives.c with mingw-w64. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
wine_dir="${TOKENWARD_WINE_DIR:-$root/target/wine}"
mkdir -p "$wine_dir/shim"

src="$root/scripts/wine/bcryptprimitives.c"
dll="$wine_dir/shim/bcryptprimitives.dll"
if [[ ! -f "$dll" || "$src" -nt "$dll" || "${src%.c}.def" -nt "$dll" ]]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -Wall -Werror -o "$dll" \
        "$src" "${src%.c}.def" -ladvapi32
fi

export WINEPREFIX="$wine_dir/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
    wineboot="$(command -v wineboot || echo /usr/lib/wine/wineboot)"
    "$wineboot" --init
    wineserver -w 2>/dev/null || /usr/lib/wine/wineserver -w
fi
