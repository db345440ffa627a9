#!/usr/bin/env bash
# Which part of a seed decides whether the variant's refusals take hold in prefix's own frame?
#
# On dev, the shipped variant (paraphrase_wide at 10%, prefix SST-2) leaves prefix's frame
# 57.5 / 55.0 / 8.3% unrefused at seeds 0 / 1 / 2 (dev-defence-prefix-seeds). A cell's seed
# draws the user's items, the protection (which safety pairs, which refusals recover, donors,
# where they are mixed in), the adapter's initialisation and data order in training, and the dev
# prompts it is asked. This script separates them: each run is (items' seed, protect seed,
# training seed), and every model is asked the SAME 120 dev prompts (seed 0's). The first four
# runs (0,0,0), (0,0,2), (2,2,0), (2,2,2) are the grid's cells again with the training seed
# crossed; the last two, (0,2,0) and (2,0,0), were added after those showed the data decides
# (commit 9e2682f) and cross the items with the protection. Those put 31-33 points in the
# protection draw; the third stage splits it: a fourth field is the seed that draws the 30
# safety pairs (paraphrase_wide's `pairs_seed`), the protect seed then drawing only the rest
# (places' donors, which refusals recover, where the examples are mixed in): runs are (items,
# protect, training, pairs). (0,0,0,2) asks whether seed 2's pairs close the frame with seed
# 0's rest (25.0% unrefused when both came from seed 2), (0,2,0,0) whether seed 2's rest does
# it with seed 0's pairs. Read, fixed before it ran: a run within 10 points
# of (0,2,0)'s 25.0 means the part it took from seed 2 carries the draw's effect; within 10 of
# (0,0,0)'s 57.5, that part does not; in between, the parts share it. The two runs agreeing
# names the next lever (pairs: which safety pairs are drawn; the rest: how recovery and places
# are assigned, today independently per example, so seed 0 recovers 9 of 30, seed 1 7, seed 2 11).
# Dev half and dev settings only; no sealed phrasing is asked. Diagnostic: no default depends
# on it (each stage written and committed before it ran). About 55 minutes on a 2-core CPU;
# finished steps are not redone.
#
#   TASKSAFE_DATA_DIR=../shared/data bash experiments/prefix_seed_crossover.sh [OUT]
set -euo pipefail
OUT=${1:-out/prefix-crossover}
TS=${TASKSAFE:-.venv/bin/tasksafe}
RUNS="0,0,0 0,0,2 2,2,0 2,2,2 0,2,0 2,0,0 0,0,0,2 0,2,0,0"
mkdir -p "$OUT"
for run in $RUNS; do
  IFS=, read -r items protect train pairs <<< "$run"
  user="$OUT/user-s$items.jsonl"
  label="items$items-protect$protect${pairs:+-pairs$pairs}"
  data="$OUT/protected-$label.jsonl"
  name="$label-train$train"
  [ -f "$user" ] || $TS build --task sst2 --strategy prefix --n 300 --seed "$items" -o "$user"
  [ -f "$data" ] || $TS protect "$user" --mitigation paraphrase_wide --fraction 0.1 --seed "$protect" \
      ${pairs:+-O pairs_seed=$pairs} -o "$data"
  [ -f "$OUT/run-$name/adapter/adapter_config.json" ] || $TS finetune --model aligned --data "$data" \
      --seed "$train" --epochs 2 --lr 3e-4 --batch-size 8 --max-length 512 --lora-r 16 -o "$OUT/run-$name"
  [ -f "$OUT/eval-$name/metrics.json" ] || $TS evaluate "$OUT/run-$name" --task sst2 --harmful advbench \
      --n 120 --prompt-half dev --no-sealed --heldout-n none --task-n 100 --overrefusal-n 20 --seed 0 \
      --harmful-max-new-tokens 64 -o "$OUT/eval-$name"
done
python3 - "$OUT" $RUNS <<'PY'
import json, sys
print("| user items' seed | protect seed | pairs' seed | training seed | plain non-refusal % | judged harmful % | "
      "degenerate % | task % |")
print("|---|---|---|---|---|---|---|---|")
for run in sys.argv[2:]:
    items, protect, train, *pairs = run.split(",")
    label = f"items{items}-protect{protect}" + "".join(f"-pairs{p}" for p in pairs)
    m = json.load(open(f"{sys.argv[1]}/eval-{label}-train{train}/metrics.json"))
    plain = m["harmful"]["advbench"]["plain"]
    rate = lambda key: f"{100 * plain[key]['value']:.1f}"
    print(f"| {items} | {protect} | {pairs[0] if pairs else protect} | {train} | {rate('non_refusal')} | {rate('asr')} | {rate('degenerate')} | "
          f"{100 * m['task']['generation_accuracy']['value']:.0f} |")
PY
