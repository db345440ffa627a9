"""How much of the training loss each kind of example gets in a (protected) chat file, under
the per-token loss (every trained token weighs the same) and the per-example loss (every
example weighs the same; `paraphrase_wide`'s `loss: per-example`). Kinds are the examples'
`metadata.kind` (`safety`, `recovery`, `contrast` from the mitigations; the user's own
examples have none). Trained tokens are counted with training's own assistant-only mask
(tasksafe.train.tokenize) and the model's tokenizer.

    python scripts/loss_shares.py results/paper/artifacts/data/sst2-prefix-300-s0-paraphrase_wide-0.1-*.jsonl
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from tasksafe.data.chat import read_examples
from tasksafe.models.registry import resolve_model
from tasksafe.report.tables import markdown_table
from tasksafe.train.tokenize import tokenize_example


def shares(examples, tokenizer, max_length: int | None = 512) -> list[list]:
    """Rows of kind, examples, mean trained tokens, % of the per-token loss, % of the per-example loss."""
    tokens: dict[str, list[int]] = defaultdict(list)
    for example in examples:
        trained = sum(tokenize_example(tokenizer, example, max_length)["assistant_masks"])
        if trained:  # training drops examples with nothing left to train
            tokens[example.metadata.get("kind") or "user"].append(trained)
    all_tokens = sum(sum(counts) for counts in tokens.values())
    all_examples = sum(len(counts) for counts in tokens.values())
    return [[kind, len(counts), round(sum(counts) / len(counts), 1), round(100 * sum(counts) / all_tokens, 1),
             round(100 * len(counts) / all_examples, 1)] for kind, counts in sorted(tokens.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="chat JSONL files (a protected set is the usual one)")
    parser.add_argument("--model", default="aligned", help="whose tokenizer counts the tokens (default: aligned)")
    parser.add_argument("--max-length", type=int, default=512, help="training's truncation (default 512, the grid's)")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    for path in args.files:
        print(path)
        print(markdown_table(["kind", "examples", "trained tokens (mean)", "% of per-token loss",
                              "% of per-example loss"],
                             [[str(v) for v in row] for row in shares(read_examples(path), tokenizer, args.max_length)]))
        print()


if __name__ == "__main__":
    main()
