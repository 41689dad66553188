#!/usr/bin/env bash
# The openclipart align benchmark's runs (BENCHMARKS.md): image <-> title retrieval over Debian's
# whole openclipart-svg collection, MRL with the FF, SVD, truncation and random-features
# (untrained) baselines, align-tiny (d=64), 4 epochs, one thread.
#   bash bench/benchmarks/align-runs.sh <runs folder> <seed>
set -euo pipefail
runs=$1 seed=$2
node "$(dirname "$0")/../../apps/cli/dist/bin.js" fit --modality align --dims 8,16,32,64 \
  --compare ff,svd,rand,untrained --threads 1 --seed "$seed" --overwrite --run-dir "$runs/align-s$seed"
