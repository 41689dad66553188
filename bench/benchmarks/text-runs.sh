#!/usr/bin/env bash
# The WordNet lexicographer benchmark's runs (BENCHMARKS.md): gloss -> one of 45 lexicographer
# classes, bert-tiny (d=128) trained from scratch, MRL with FF, SVD and truncation baselines, and
# MRL-E. The JSONL comes from packages/text/scripts/wordnet-files.mjs.
# Nesting dims 8,16,128 by default (the claims are about d <= 16 and the full dim; each FF dim is
# one more bert-tiny to train).
#   bash bench/benchmarks/text-runs.sh <lexnames.jsonl> <runs folder> <part: mrl-s0|mrle-s0|mrlonly-s1 (MRL without baselines)|...> [steps] [dims]
set -euo pipefail
data=$1 runs=$2 part=$3 steps=${4:-500} dims=${5:-8,16,128}
common=(--modality text --task classify --data "$data" --text-field text --label-field label --dims "$dims"
  --train-limit 20000 --test-limit 2000 --steps "$steps" --lr 0.001 --threads 1 --overwrite)
cli=(node "$(dirname "$0")/../../apps/cli/dist/bin.js" fit)
case $part in
  mrl-s*) seed=${part#mrl-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --compare ff,svd,rand --run-dir "$runs/lexnames-mrl-s$seed" ;;
  mrlonly-s*) seed=${part#mrlonly-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --run-dir "$runs/lexnames-mrlonly-s$seed" ;;
  mrle-s*) seed=${part#mrle-s}; "${cli[@]}" "${common[@]}" --seed "$seed" --head shared --run-dir "$runs/lexnames-mrle-s$seed" ;;
  *) echo "unknown part $part" >&2; exit 1 ;;
esac
