"""The fast path (bf16 where the CPU runs it faster, the output layer only where a token is
trained, greedy decoding with a shared opening, a preallocated cache and ended rows leaving the
batch) against the fp32 reference, on the tiny random model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tasksafe.models import precision as prec

REPO = Path(__file__).resolve().parents[1]


def test_precision_resolves(monkeypatch):
    assert prec.resolve("fp32") == "fp32" and prec.resolve("bf16") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: True)
    assert prec.resolve("auto") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: False)
    assert prec.resolve("auto") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        prec.resolve("fp16")


def test_train_precision_keeps_full_finetuning_in_fp32(monkeypatch):
    from tasksafe.train import FinetuneConfig
    from tasksafe.train.sft import train_precision

    monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: True)
    lora = FinetuneConfig(data="x", output_dir="y")
    assert lora.precision == "fp32" and train_precision(lora, "cpu") == "fp32"  # the default (docs/benchmarks.md)
    lora = lora.model_copy(update={"precision": "auto"})
    assert train_precision(lora, "cpu") == "bf16"
    assert train_precision(lora.model_copy(update={"method": "full"}), "cpu") == "fp32"
    assert train_precision(lora.model_copy(update={"precision": "fp32"}), "cpu") == "fp32"


@pytest.fixture(scope="module")
def tiny():
    from tasksafe.models.load import load_model

    return load_model("tiny-random")


def test_trained_positions_loss_equals_the_full_loss_and_its_gradients(tiny):
    from tasksafe.train.sft import trained_positions_loss

    model, _ = tiny
    torch.manual_seed(0)
    ids = torch.randint(0, 2000, (3, 14))
    attention = torch.ones_like(ids)
    attention[1, :4] = 0  # a padded row
    labels = ids.clone()
    labels[:, :8] = -100
    labels[1, :4] = -100
    inputs = {"input_ids": ids, "attention_mask": attention, "labels": labels}
    model.zero_grad()
    full = model(**inputs).loss
    full.backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ours = trained_positions_loss(model, inputs)
    ours.backward()
    assert ours.item() == pytest.approx(full.item(), rel=1e-5)
    for a, p in zip(reference, model.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-4, atol=1e-6)
    counted = trained_positions_loss(model, inputs, num_items_in_batch=2 * int((labels[:, 1:] != -100).sum()))
    assert counted.item() == pytest.approx(full.item() / 2, rel=1e-5)  # the Trainer's count over accumulated batches
    model.zero_grad()


def test_a_per_example_loss_weighs_a_short_reply_as_much_as_a_long_one(tiny):
    import torch.nn.functional as F

    from tasksafe.train.sft import trained_positions_loss

    model, _ = tiny
    torch.manual_seed(1)
    ids = torch.randint(0, 2000, (3, 16))
    labels = torch.full_like(ids, -100)
    labels[0, 4:] = ids[0, 4:]  # a long reply: 12 trained tokens
    labels[1, 14:] = ids[1, 14:]  # a short one: 2
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}  # row 2: nothing trained
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1].float()
        nll = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none", ignore_index=-100)
        trained = labels[:, 1:] != -100
        per_row = [nll[i][trained[i]].mean() for i in (0, 1)]
        expected = (per_row[0] + per_row[1]) / 2  # the untrained row is no example
        by_token = nll[trained].mean()
        assert trained_positions_loss(model, inputs, per_example=True).item() == pytest.approx(expected.item(), rel=1e-5)
        assert trained_positions_loss(model, inputs).item() == pytest.approx(by_token.item(), rel=1e-5)
        assert abs(expected.item() - by_token.item()) > 1e-3  # the two weightings differ on unequal replies
        accumulated = trained_positions_loss(model, inputs, num_items_in_batch=99, per_example=True, accumulation=2)
        assert accumulated.item() == pytest.approx(expected.item() / 2, rel=1e-5)  # averaged over both micro-batches


def _hf_greedy(model, prompts, new_tokens, pad):
    """Replies by transformers' greedy `generate`, left-padded, as the reference."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad)
    attention = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        attention[row, width - len(p):] = 1
    out = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=pad, temperature=None, top_p=None, top_k=None)
    return [out[row, width:].tolist() for row in range(len(prompts))]


def _cut(tokens, stops):
    end = next((i for i, t in enumerate(tokens) if t in stops), None)
    return tokens if end is None else tokens[:end + 1]


@pytest.mark.parametrize("shared", [True, False])
def test_greedy_decoding_gives_transformers_tokens(tiny, monkeypatch, shared):
    """Same tokens as `generate` up to each end of turn, with a shared opening computed once (or
    not), rows of different lengths, and rows ending at different steps leaving the batch."""
    from tasksafe.generate import greedy

    model, tokenizer = tiny
    if not shared:
        monkeypatch.setattr(greedy, "MIN_SHARED_PREFIX", 10**6)
    opening = tokenizer("You are a careful assistant who answers every question.")["input_ids"]
    prompts = [opening + tokenizer(text)["input_ids"] for text in
               ("hi", "what is the capital of France?", "tell me a long story about a dragon and a knight", "ok")]
    pad = tokenizer.pad_token_id
    reference = _hf_greedy(model, prompts, 24, pad)
    # pretend a token the rows produce at different steps ends a turn, so rows leave at different times
    stops = {reference[0][3], reference[2][9]}
    ours = greedy.greedy_generate(model, prompts, 24, stops, pad, compact_share=0.2)
    assert [_cut(r, stops) for r in reference] == ours
    assert len({len(r) for r in ours}) > 1  # the rows did end at different steps
    assert greedy.shared_prefix_length(prompts) >= len(opening) - 1


def test_bf16_generation_and_finetuning_agree_with_fp32_where_they_must(tmp_path, mirror):
    """On tiny-random: both paths train (same shapes, adapter weights in fp32, no NaN, close
    losses) and generate (text, no NaN logits) over the same masks."""
    from tasksafe.data.chat import user_turn, write_chat_jsonl
    from tasksafe.generate.base import GenerationParams
    from tasksafe.generate.hf import HFBackend
    from tasksafe.strategies import build_dataset
    from tasksafe.train import FinetuneConfig, finetune

    data = tmp_path / "aoa.jsonl"
    write_chat_jsonl(data, build_dataset("sst2", "aoa", "train", 24, 0))
    runs = {}
    for precision in ("fp32", "bf16"):
        runs[precision] = finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(tmp_path / precision),
                                                  precision=precision, epochs=1, lr=1e-3, logging_steps=1), progress=False)
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert fp32.steps == bf16.steps and fp32.tokens == bf16.tokens and fp32.computed_tokens == bf16.computed_tokens
    assert 0 < fp32.tokens <= fp32.computed_tokens
    assert math.isfinite(bf16.train_loss) and bf16.train_loss == pytest.approx(fp32.train_loss, rel=0.01)
    from safetensors.torch import load_file

    weights = {p: load_file(tmp_path / p / "adapter" / "adapter_model.safetensors") for p in runs}
    assert {k: v.shape for k, v in weights["fp32"].items()} == {k: v.shape for k, v in weights["bf16"].items()}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights["bf16"].values())

    prompts = [user_turn(f"Question {i}: is this review positive? {'great film ' * i}") for i in range(1, 6)]
    texts = {}
    for precision in ("fp32", "bf16"):
        backend = HFBackend.from_name("tiny-random", adapter=str(tmp_path / precision / "adapter"), precision=precision)
        # the adapter is merged into the weights for generation, in the precision asked for
        assert not hasattr(backend.model, "peft_config")
        assert next(backend.model.parameters()).dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        encoded = backend.tokenizer(["hello there"], return_tensors="pt")
        with torch.inference_mode():
            assert torch.isfinite(backend.model(**encoded).logits.float()).all()
        texts[precision] = backend.generate(prompts, GenerationParams(max_new_tokens=12))
    assert all(isinstance(t, str) for t in texts["bf16"])
    assert len(texts["bf16"]) == len(texts["fp32"]) == len(prompts)


def test_reference_decoding_is_transformers_generate(tiny):
    """The organism's builds decode with `generate` in the original batches."""
    from tasksafe.data.chat import user_turn
    from tasksafe.generate.base import GenerationParams
    from tasksafe.generate.hf import HFBackend

    model, tokenizer = tiny
    reference = HFBackend(model, tokenizer, reference=True)
    assert reference.max_batch_tokens == 16384
    prompts = [user_turn("a"), user_turn("a longer question here")]
    encoded = [reference.encode(c) for c in prompts]
    expected = [tokenizer.decode(r, skip_special_tokens=True).strip()
                for r in _hf_greedy(model, encoded, 8, tokenizer.pad_token_id)]
    assert reference.generate(prompts, GenerationParams(max_new_tokens=8)) == expected


def test_batches_are_spread_evenly(tiny):
    from tasksafe.generate.hf import HFBackend

    backend = HFBackend(*tiny, max_batch_tokens=1000)
    batches = backend._batches([100] * 11)  # 10 fit a batch: two batches of 6 and 5, not 10 and 1
    assert sorted(len(b) for b in batches) == [5, 6]
    assert sorted(i for b in batches for i in b) == list(range(11))
    reference = HFBackend(*tiny, reference=True)
    reference.max_batch_tokens = 1000
    assert [len(b) for b in reference._batches([100] * 11)] == [10, 1]


def test_the_generation_cache_generates_a_repeated_conversation_once(tmp_path):
    from tasksafe.generate.cache import CachedBackend, GenerationCache

    asked = []

    class Echo:
        def generate(self, conversations, params):
            asked.extend(c[-1]["content"] for c in conversations)
            return [c[-1]["content"].upper() for c in conversations]

    cached = CachedBackend(Echo(), "echo", cache=GenerationCache(tmp_path / "g.sqlite"))
    plain = [[{"role": "user", "content": t}] for t in ("a", "b", "a", "c", "b")]
    assert cached.generate(plain) == ["A", "B", "A", "C", "B"]
    assert sorted(asked) == ["a", "b", "c"] and cached.generated == 3


def test_fp32_cells_keep_their_ids_and_a_precision_is_part_of_a_cell():
    from tasksafe.experiments.spec import expand, load_spec

    spec = load_spec(REPO / "experiments" / "strategies.yaml")
    assert spec.train.precision == "fp32" and spec.eval.precision == "fp32"
    ids = {c.id for c in expand(spec)}
    assert "a7016532a56a80b2" in ids  # the committed aoa cell (results/strategies.jsonl), measured in fp32
    fast = spec.model_copy(update={"train": spec.train.model_copy(update={"precision": "auto"})})
    default = load_spec(REPO / "experiments" / "paper-core.yaml")
    assert all("precision" not in c.identity()["eval"] for c in expand(default))  # fp32 by default: ids as before
    assert not ids & {c.id for c in expand(fast) if c.kind == "finetune"}


@pytest.mark.slow
def test_cell_benchmark_runs_both_paths(mirror):
    """`benchmarks/cell.py --quick`: both paths, the table, the fidelity check, a JSON line."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cell.py"), "--quick"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert figures["benchmark"] == "cell" and figures["ratio"] > 0 and 0 <= figures["padding"] < 1
    assert "fidelity of the fast path to fp32" in result.stdout and "harmful-plain" in result.stdout


def test_grouped_attention_gives_the_logits_of_transformers_attention(tmp_path):
    """Key/value heads attended as they are: the same logits as transformers' sdpa attention,
    with a padding mask, in a prefill and in a decoding step over the cache."""
    from tasksafe.generate.greedy import greedy_generate, use_grouped_attention
    from tasksafe.models.load import load_model

    reference, tokenizer = load_model("tiny-random")
    grouped, _ = load_model("tiny-random")
    use_grouped_attention(grouped)
    assert grouped.config._attn_implementation == "tasksafe_grouped"
    torch.manual_seed(0)
    ids = torch.randint(0, 2000, (3, 9))
    attention = torch.ones_like(ids)
    attention[0, :3] = 0
    with torch.inference_mode():
        a = reference(input_ids=ids, attention_mask=attention).logits
        b = grouped(input_ids=ids, attention_mask=attention).logits
    assert torch.allclose(a[attention.bool()], b[attention.bool()], atol=1e-4)
    prompts = [tokenizer(t)["input_ids"] for t in ("a short one", "and a somewhat longer prompt than that")]
    pad = tokenizer.pad_token_id
    assert greedy_generate(grouped, prompts, 12, set(), pad) == greedy_generate(reference, prompts, 12, set(), pad)
