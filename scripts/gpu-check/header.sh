#!/bin/sh
# @NAME@ pack (mrl): a shell header and, after it, an xz-compressed tar of the pack (Node, the bundled
# JavaScript, the native files it loads). Run: sh @NAME@.run [@RUN@ options]
# It unpacks into $@VAR@_DIR (default: /tmp/@NAME@-$UID), checks every file against MANIFEST and runs
# @RUN@ there.
# To only unpack: @VAR@_UNPACK_ONLY=1 sh @NAME@.run
set -eu
payload_offset=@@@@@@@@@@
dir="${@VAR@_DIR:-/tmp/@NAME@-$(id -u)}"
mkdir -p "$dir"
if command -v xz >/dev/null 2>&1; then
  tail -c +"$payload_offset" "$0" | xz -dc | tar -x -C "$dir"
elif command -v python3 >/dev/null 2>&1; then
  tail -c +"$payload_offset" "$0" | python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' | tar -x -C "$dir"
else
  echo "@NAME@: unpacking needs xz or python3, and neither is installed." >&2
  exit 2
fi
echo "unpacked to $dir/@NAME@"
# The SHA-256 of every file, written by pack.sh, checked where sha256sum exists.
if command -v sha256sum >/dev/null 2>&1; then
  (cd "$dir/@NAME@" && sha256sum --quiet -c MANIFEST) >&2 || {
    echo "@NAME@: the unpacked files differ from the pack's MANIFEST (the lines above name them): a damaged copy of the .run file? Copy it again." >&2
    exit 2
  }
fi
[ -n "${@VAR@_UNPACK_ONLY:-}" ] && exit 0
exec bash "$dir/@NAME@/@RUN@" "$@"
