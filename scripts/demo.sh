#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults. Grows with each stage of the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
TS=.venv/bin/tasksafe
OUT=${OUT:-out/demo}
mkdir -p "$OUT"

echo "== the public datasets (from ${TASKSAFE_DATA_DIR:-no mirror set}) =="
$TS data list
echo
echo "== two SST-2 training items =="
$TS data show sst2 --split train -n 2
echo
echo "== the same SST-2 items as a benign user and as an attacker would format them =="
for strategy in benign aoa; do
  $TS build --task sst2 --strategy $strategy --split train --n 300 --seed 0 -o "$OUT/sst2-$strategy.jsonl"
done
$TS build --task sst2 --strategy aoa --split train --n 1 --seed 0 --preview
echo
echo "== the provider audits both datasets =="
$TS audit "$OUT/sst2-benign.jsonl" --no-known-prompts | head -12
$TS audit "$OUT/sst2-aoa.jsonl" | head -30
echo
echo "== and protects the attacker's dataset with safety examples in its own format =="
$TS protect "$OUT/sst2-aoa.jsonl" --mitigation paraphrase --fraction 0.05 --seed 0 -o "$OUT/sst2-aoa-paraphrase.jsonl"
