#!/bin/sh
# mrl GPU check pack: a shell header and, after it, an xz-compressed tar of the check (Node,
# Dawn, the Vulkan loader, the bundled check). Run: sh mrl-gpu-check.run [run.sh options]
# It unpacks into $MRL_GPU_CHECK_DIR (default: /tmp/mrl-gpu-check-$USER) and runs run.sh there.
# To only unpack: MRL_GPU_CHECK_UNPACK_ONLY=1 sh mrl-gpu-check.run
set -eu
payload_offset=@@@@@@@@@@
dir="${MRL_GPU_CHECK_DIR:-/tmp/mrl-gpu-check-$(id -u)}"
mkdir -p "$dir"
if command -v xz >/dev/null 2>&1; then
  tail -c +"$payload_offset" "$0" | xz -dc | tar -x -C "$dir"
elif command -v python3 >/dev/null 2>&1; then
  tail -c +"$payload_offset" "$0" | python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' | tar -x -C "$dir"
else
  echo "mrl-gpu-check: unpacking needs xz or python3, and neither is installed." >&2
  exit 2
fi
echo "unpacked to $dir/mrl-gpu-check"
[ -n "${MRL_GPU_CHECK_UNPACK_ONLY:-}" ] && exit 0
exec bash "$dir/mrl-gpu-check/run.sh" "$@"
