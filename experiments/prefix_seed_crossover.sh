#!/usr/bin/env bash
# Which part of a seed decides whether the variant's refusals take hold in prefix's own frame?
#
# On dev, the shipped variant (paraphrase_wide at 10%, prefix SST-2) leaves prefix's frame
# 57.5 / 55.0 / 8.3% unrefused at seeds 0 / 1 / 2 (dev-defence-prefix-seeds). A cell's seed
# draws three things: the protected data (the user's items, the safety pairs, which refusals
# recover, the order), the adapter's initialisation and data order in training, and the dev
# prompts it is asked. This script separates them: it protects the data of seeds 0 and 2, trains
# each with training seed 0 and 2 (the two diagonal runs are the grid's cells again), and asks
# all four models the SAME 120 dev prompts (seed 0's). Dev half and dev settings only; no
# sealed phrasing is asked. Diagnostic: no default depends on it (written and committed before
# it ran). About 40 minutes on a 2-core CPU.
#
#   TASKSAFE_DATA_DIR=../shared/data bash experiments/prefix_seed_crossover.sh [OUT]
set -euo pipefail
OUT=${1:-out/prefix-crossover}
TS=${TASKSAFE:-.venv/bin/tasksafe}
mkdir -p "$OUT"
for data in 0 2; do
  [ -f "$OUT/user-s$data.jsonl" ] || $TS build --task sst2 --strategy prefix --n 300 --seed $data -o "$OUT/user-s$data.jsonl"
  [ -f "$OUT/protected-s$data.jsonl" ] || $TS protect "$OUT/user-s$data.jsonl" --mitigation paraphrase_wide \
      --fraction 0.1 --seed $data -o "$OUT/protected-s$data.jsonl"
done
for data in 0 2; do
  for train in 0 2; do
    run="$OUT/run-data$data-train$train"
    [ -f "$run/adapter/adapter_config.json" ] || $TS finetune --model aligned --data "$OUT/protected-s$data.jsonl" \
        --seed $train --epochs 2 --lr 3e-4 --batch-size 8 --max-length 512 --lora-r 16 -o "$run"
    [ -f "$OUT/eval-data$data-train$train/metrics.json" ] || $TS evaluate "$run" --task sst2 --harmful advbench \
        --n 120 --prompt-half dev --no-sealed --heldout-n none --task-n 100 --overrefusal-n 20 --seed 0 \
        --harmful-max-new-tokens 64 -o "$OUT/eval-data$data-train$train"
  done
done
# Second stage, written after the first showed the data draw decides (training seed and prompt
# sample do not): the user's items of one seed protected with the other seed's draw (safety
# pairs, which refusals recover, donors, where they are mixed in), trained with training seed 0.
for pair in "0 2" "2 0"; do
  set -- $pair
  run="$OUT/run-items$1-protect$2"
  [ -f "$OUT/protected-items$1-protect$2.jsonl" ] || $TS protect "$OUT/user-s$1.jsonl" --mitigation paraphrase_wide \
      --fraction 0.1 --seed $2 -o "$OUT/protected-items$1-protect$2.jsonl"
  [ -f "$run/adapter/adapter_config.json" ] || $TS finetune --model aligned --data "$OUT/protected-items$1-protect$2.jsonl" \
      --seed 0 --epochs 2 --lr 3e-4 --batch-size 8 --max-length 512 --lora-r 16 -o "$run"
  [ -f "$OUT/eval-items$1-protect$2/metrics.json" ] || $TS evaluate "$run" --task sst2 --harmful advbench \
      --n 120 --prompt-half dev --no-sealed --heldout-n none --task-n 100 --overrefusal-n 20 --seed 0 \
      --harmful-max-new-tokens 64 -o "$OUT/eval-items$1-protect$2"
done
python3 - "$OUT" <<'EOF'
import json, sys
print("| user items' seed | protect seed | training seed | plain non-refusal % | judged harmful % | degenerate % | task % |")
print("|---|---|---|---|---|---|---|")
runs = [(d, d, t, f"eval-data{d}-train{t}") for d in (0, 2) for t in (0, 2)]
runs += [(i, p, 0, f"eval-items{i}-protect{p}") for i, p in ((0, 2), (2, 0))]
for items, protect, train, name in runs:
    m = json.load(open(f"{sys.argv[1]}/{name}/metrics.json"))
    plain = m["harmful"]["advbench"]["plain"]
    rate = lambda key: f"{100 * plain[key]['value']:.1f}"
    print(f"| {items} | {protect} | {train} | {rate('non_refusal')} | {rate('asr')} | {rate('degenerate')} | "
          f"{100 * m['task']['generation_accuracy']['value']:.0f} |")
EOF
