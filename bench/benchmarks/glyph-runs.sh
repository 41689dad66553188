#!/usr/bin/env bash
# The glyph benchmark's training runs (BENCHMARKS.md): MRL with the FF, SVD, truncation and
# random-features (untrained) baselines, and MRL-E, each at two seeds, on the folder
# bench/benchmarks/glyphs.mjs writes. Warm-up 200 steps and the heads' learning rate x10 (the
# settings that removed the chance plateau at lr 3e-3); 3 epochs (405 steps) for every model.
# One thread each, so that the numbers repeat.
# mrlw-sS: MRL alone with the loss weights c_m of WEIGHTS (one per nesting dim, e.g. 2,2,1,1),
# to set against mrl-sS's equal weights.
#   bash bench/benchmarks/glyph-runs.sh <glyph folder> <runs folder> <part: mrl-s0|mrl-s1|mrle-s0|mrle-s1|mrlw-s0>
set -euo pipefail
data=$1 runs=$2 part=$3
common=(--modality vision --model mlp --data "$data" --channels 1 --image-size 32 --no-augment
  --dim 64 --dims 8,16,32,64 --epochs 3 --lr 0.003 --warmup-steps 200 --head-lr-scale 10 --batch-size 128
  --threads 1 --overwrite)
cli=(node "$(dirname "$0")/../../apps/cli/dist/bin.js" fit)
case $part in
  mrl-s*) seed=${part#mrl-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --compare ff,svd,rand,untrained --run-dir "$runs/glyphs-mrl-s$seed" ;;
  mrle-s*) seed=${part#mrle-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --head shared --run-dir "$runs/glyphs-mrle-s$seed" ;;
  mrlw-s*) seed=${part#mrlw-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --weights "${WEIGHTS:?set WEIGHTS, e.g. WEIGHTS=2,2,1,1}" --run-dir "$runs/glyphs-mrlw-s$seed" ;;
  *) echo "unknown part $part" >&2; exit 1 ;;
esac
