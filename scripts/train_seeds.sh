#!/usr/bin/env bash
# Seeds of the demo recipe on the current world, one after the other, each resumable: rerunning
# this script continues a killed run (--resume) and skips finished ones; each finished run is
# then evaluated (`gair eval`, its heads saved in the run dir).
# Usage: [SEEDS="0 1 2"] [EPOCHS=12] [TRAIN_ARGS=...] [EVAL_ARGS=...] bash scripts/train_seeds.sh [RUNS_DIR]
# The cut-down check of three seeds: SEEDS="0 1 2" EPOCHS=4 bash scripts/train_seeds.sh runs/cut
set -euo pipefail
RUNS=${1:-runs}
GAIR=${GAIR:-.venv/bin/gair}
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-12}
mkdir -p "$RUNS"
for seed in $SEEDS; do
  out="$RUNS/demo-e$EPOCHS-seed$seed"
  if [ ! -s "$out.summary.json" ]; then  # -s: an empty file is not a finished run
    resume=""; [ -f "$out/last.ckpt" ] && resume="--resume"
    echo "seed $seed: training $EPOCHS epochs into $out $resume ($(date -u +%H:%M:%S))"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$GAIR" train --config train/configs/demo.yaml --set seed="$seed" \
      --set trainer.max_epochs="$EPOCHS" ${TRAIN_ARGS:-} --out "$out" $resume --json \
      > "$out.summary.tmp"
    echo "seed $seed: trained in $(( $(date +%s) - start )) s"
    mv "$out.summary.tmp" "$out.summary.json"
  fi
  if [ ! -f "$out/eval.json" ]; then
    echo "seed $seed: evaluating ($(date -u +%H:%M:%S))"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$GAIR" eval --checkpoint "$out" ${EVAL_ARGS:-} > "$out.eval.md"
    echo "seed $seed: evaluated in $(( $(date +%s) - start )) s"
  fi
done
