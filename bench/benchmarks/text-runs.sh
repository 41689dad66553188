#!/usr/bin/env bash
# The WordNet benchmarks' runs (BENCHMARKS.md section 2), bert-tiny (d=128) trained from scratch.
# The JSONL files come from packages/text/scripts/wordnet-files.mjs.
#
# Lexicographer classes (gloss -> one of 45 classes), data = lexnames.jsonl:
#   mrl-sS:   MRL (separate heads) with FF at every nesting dim, SVD, Trunc and Untrained
#   mrle-sS:  MRL-E (one shared head), no baselines
# Example -> gloss retrieval, data = pairs.jsonl (scored against every gloss of --gloss-file):
#   pairs-sS: MRL, the model without MRL at the full dim (FF at d; Trunc), SVD and Untrained
#             (COMPARE=ff,svd,rand,untrained adds FF at every dim)
# Nesting dims 8,16,128 by default (the claims are about d <= 16 and the full dim; each FF dim is
# one more bert-tiny to train).
# LR (default 0.001) sets the learning rate; EXTRA adds flags to every fit (word-split, so no spaces
# inside one flag's value), e.g. a smaller bert: EXTRA='--vocab-size 4096 --max-length 24
# --model-config {"numLayers":1,"intermediateSize":256,"dropout":0}'.
#   bash bench/benchmarks/text-runs.sh <jsonl> <runs folder> <part> [steps] [dims] [warm-up steps]
set -euo pipefail
data=$1 runs=$2 part=$3 steps=${4:-500} dims=${5:-8,16,128} warmup=${6:-0}
# shellcheck disable=SC2206 # EXTRA is split into flags on purpose
extra=(${EXTRA:-})
train=(--steps "$steps" --warmup-steps "$warmup" --lr "${LR:-0.001}" --threads 1 --overwrite --dims "$dims" "${extra[@]}")
classify=(--modality text --task classify --data "$data" --text-field text --label-field label
  --train-limit 20000 --test-limit 2000 "${train[@]}")
cli=(node "$(dirname "$0")/../../apps/cli/dist/bin.js" fit)
compare=${COMPARE:-ff,svd,rand,untrained}
case $part in
  mrl-s*) seed=${part#mrl-s}; "${cli[@]}" "${classify[@]}" --seed "$seed" --head separate --compare "$compare" --run-dir "$runs/lexnames-mrl-s$seed" ;;
  mrle-s*) seed=${part#mrle-s}; "${cli[@]}" "${classify[@]}" --seed "$seed" --head shared --run-dir "$runs/lexnames-mrle-s$seed" ;;
  pairs-s*) seed=${part#pairs-s}
    "${cli[@]}" --modality text --task pairs --data "$data" --candidates "$(dirname "$data")/lexnames.jsonl" --text-field text \
      --test-limit 2000 "${train[@]}" --seed "$seed" --compare "${COMPARE:-svd,rand,untrained}" \
      --run-dir "$runs/wordnet-pairs-s$seed" ;;
  *) echo "unknown part $part" >&2; exit 1 ;;
esac
