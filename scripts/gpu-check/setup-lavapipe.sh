#!/usr/bin/env bash
# Installs Mesa's lavapipe (a software Vulkan driver) from bookworm-backports, the driver the GPU
# check pack runs on in place of a GPU. Debian bookworm's own Mesa 22.3 gives Dawn no adapter;
# Mesa 25 does. Run as root; safe to run again. Not part of scripts/setup.sh: CI does not run the
# pack (its lavapipe run takes minutes), and the backports source changes the machine's apt setup.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-lavapipe: needs root (apt-get)." >&2
  exit 1
fi
list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" >"$list"
fi
apt-get -o DPkg::Lock::Timeout=600 update -q
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
  -t bookworm-backports mesa-vulkan-drivers libvulkan1
