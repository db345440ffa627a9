#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults, end to end.
# 1. a short tour: datasets, a benign and an attacker's dataset, the audit, Paraphrase;
# 2. the demo's model organism (`tasksafe align --recipe demo`: built once, then cached);
# 3. experiments/demo.yaml: the attacker's dataset fine-tuned with and without Paraphrase (2 cells);
# 4. the report: a short summary here, every rate in report.md and report.html.
# Stage times on the 2-core CPU machine are in docs/benchmarks.md ("make demo").
# Each stage ends with the minutes elapsed since the start.
set -euo pipefail
cd "$(dirname "$0")/.."
TS=.venv/bin/tasksafe
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
elapsed() { echo "-- $(date -u +%H:%M:%S), $((SECONDS / 60)) min $((SECONDS % 60)) s since the start"; }
wrap() { fold -s -w 100; }      # prose, wrapped to a 100-column terminal
clip() { cut -c1-100; }         # tables, cut at 100 columns (each command shows them whole)

echo "== the public datasets (from ${TASKSAFE_DATA_DIR:-no mirror set}) =="
$TS data list | clip
echo "(tasksafe data list shows each licence in full; the non-commercial licences above apply to everything below; their notes are not repeated)" | wrap
export TASKSAFE_LICENCE_NOTES=off
echo
echo "== the same SST-2 items as a benign user and as an attacker would format them =="
for strategy in benign aoa; do
  $TS build --task sst2 --strategy $strategy --split train --n 300 --seed 0 -o "$OUT/sst2-$strategy.jsonl"
done
$TS build --task sst2 --strategy aoa --split train --n 1 --seed 0 --preview | wrap
echo
echo "== the provider audits both datasets =="
$TS audit "$OUT/sst2-benign.jsonl" --no-known-prompts > "$OUT/audit-benign.txt"
$TS audit "$OUT/sst2-aoa.jsonl" > "$OUT/audit-aoa.txt"
head -12 "$OUT/audit-benign.txt" | wrap
head -30 "$OUT/audit-aoa.txt" | wrap
echo
echo "== and protects the attacker's dataset with safety examples in its own format =="
$TS protect "$OUT/sst2-aoa.jsonl" --mitigation paraphrase --fraction 0.05 --seed 0 -o "$OUT/sst2-aoa-paraphrase.jsonl"
echo
echo "== the judge's agreement with human labels (cached; evaluations report it) =="
$TS judge validate --judge keywords | tail -2 | wrap
echo "and with people on $(wc -l < labels/organism-replies.jsonl) replies of the model organism" \
  "(labels/organism-replies.jsonl, rubric in docs/evaluation.md):" | wrap
$TS judge agree --judge keywords | clip
echo
elapsed
echo
echo "== the demo's model organism: recipe 1 on less data (cached after the first build) =="
$TS align --recipe demo > "$OUT/alignment.txt"
grep -v "^{" "$OUT/alignment.txt" | head -1  # the model folder (the build logs its steps first)
sed -n '/^against the organism targets/,$p' "$OUT/alignment.txt"  # its figures (the demo's: 50 prompts each)
elapsed
echo
echo "== the attack with and without Paraphrase: fine-tune and evaluate (experiments/demo.yaml) =="
$TS run experiments/demo.yaml --results "$OUT/results"
elapsed
echo
$TS report "$OUT/results" -o "$OUT/report"
elapsed
