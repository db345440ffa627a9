"""Recipe 5: the organism trained by preference optimisation (TRL's DPO) instead of supervised
fine-tuning alone.

Every training item is a pair of replies to one request, the preferred one and the one to
move away from:

- a harmful request (from the safety pool's pairs whose own answer refuses: a fifth of the
  pool are benign requests answered helpfully, which a refusal would teach over-refusing): a
  short refusal preferred over the base model's own compliant answer;
- a deep refusal: the same request with a compliant-looking opening already in the reply (part
  of the prompt, so never trained on); a turn into a refusal preferred over the base model's own
  continuation of that opening;
- a benign instruction, or a benign request that only sounds alarming: the base model's own
  answer preferred over a refusal (a short one, or from recipe 6 on, for a share of the pairs,
  one in the safety pool's own longer style).

From recipe 6 on, the refusing pairs of a second safety pool (`extra_harmful`) are all added to
the harmful requests.

The requests are laid out as in recipes 2 to 4 (varied system prompts, general and short-answer
layouts; short answers in short layouts). The loss is DPO's (sigmoid, against the base model's
log-probabilities, computed once before training) plus the negative log-likelihood of the
preferred reply (TRL's `sft` loss type), which teaches the refusal wording as well as the
preference.

The alarming-but-benign requests come from the safe half of a contrast set in the mirror
(`bianchi-physical-safe`) and from templates of kinds that XSTest (evaluation only) does not
have: protecting someone from a danger, its warning signs, what to do when it happens, disposing
of or reporting something dangerous. Every one is checked against every evaluation set
(`EVAL_HARMFUL_SETS` and the held-out benign split) and dropped when it duplicates or nearly
duplicates one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

from tasksafe.data.chat import Message, to_openai

PROTECT_FROM = ("phishing emails", "identity theft", "carbon monoxide poisoning", "online scams", "ransomware",
                "a house fire", "food poisoning", "heatstroke", "burglary", "credit card fraud", "cyberbullying",
                "drowning at the beach", "dog bites", "frostbite", "electric shocks at home", "a gas leak")
PROTECT_WHO = ("my elderly parents", "my children", "myself", "my small business", "my neighbours", "my students")
WARNING_SIGNS = ("a stroke", "a heart attack", "an allergic reaction", "a gas leak", "a phishing email",
                 "a romance scam", "hypothermia", "dehydration", "a concussion", "a counterfeit banknote",
                 "a pyramid scheme", "a compromised email account", "elder financial abuse", "a rip current")
WHEN_IT_HAPPENS = ("someone is choking", "my kitchen pan catches fire", "I find a used syringe in the park",
                   "my bank account was hacked", "a child swallows a battery", "I smell gas in my flat",
                   "I get bitten by a snake on a hike", "someone faints in front of me",
                   "I receive a threatening message online", "my car starts to skid on ice",
                   "I see a pickpocket on the bus", "a wildfire is approaching my town")
DISPOSE_OF = ("old medicines", "used motor oil", "broken fluorescent bulbs", "expired fireworks", "lithium batteries",
              "leftover paint thinner", "an old mercury thermometer", "used needles from insulin injections")
REPORT = ("a scam website", "a drunk driver on the motorway", "child abuse", "a fake charity", "a data breach at work",
          "illegal dumping", "a stolen bicycle", "a hate crime I witnessed")
ALARMING_TEMPLATES = (
    ("How can I protect {who} from {x}?", PROTECT_FROM),
    ("What are the warning signs of {x}?", WARNING_SIGNS),
    ("What should I do if {x}?", WHEN_IT_HAPPENS),
    ("How do I safely dispose of {x}?", DISPOSE_OF),
    ("How do I report {x} to the authorities?", REPORT),
)


class Request(NamedTuple):
    id: str
    prompt: str


def templated_alarming(seed: int) -> list[Request]:
    """Every alarming-but-benign request the templates make (the `who` of the
    first template drawn with `seed`)."""
    rng = random.Random(f"alarming:{seed}")
    requests = []
    for t, (template, fillers) in enumerate(ALARMING_TEMPLATES):
        for i, x in enumerate(fillers):
            requests.append(Request(f"alarming-{t}-{i}", template.format(x=x, who=rng.choice(PROTECT_WHO))))
    return requests


def alarming_requests(seed: int) -> tuple[list[Request], list[dict]]:
    """The alarming-but-benign training requests (the contrast set's safe half and the
    templates) that duplicate no evaluation prompt, and a record of the ones removed."""
    from tasksafe.data.datasets import load
    from tasksafe.data.dedup import NearDuplicateIndex, split_overlapping
    from tasksafe.mitigations.base import EVAL_HARMFUL_SETS

    candidates = [Request(r.id, r.prompt) for r in load("bianchi-physical-safe")] + templated_alarming(seed)
    evaluation = {r.id: r.prompt for name in EVAL_HARMFUL_SETS for r in load(name)}
    evaluation |= {r.id: r.prompt for r in load("harmless", split="test")}
    return split_overlapping(candidates, lambda item: item.prompt, NearDuplicateIndex(evaluation))


@dataclass
class PreferencePair:
    """One request with the reply to prefer and the reply to move away from. `opening` is
    reply text the model is shown as its own and not trained on (a deep refusal's compliant
    start); `chosen` and `rejected` continue it."""

    prompt: list[Message]
    chosen: str
    rejected: str
    kind: str
    id: str
    opening: str = ""
    extra: dict = field(default_factory=dict)

    def conversation(self) -> list[dict]:
        """The prompt as plain dicts, ending with the opening as a pre-filled reply when there is one."""
        messages = to_openai(self.prompt)
        return messages + [{"role": "assistant", "content": self.opening.rstrip()}] if self.opening else messages

    def to_text(self, tokenizer) -> dict:
        """TRL's standard (text) preference row: the chat template's prompt up to where the
        reply starts (the opening included), and each reply ending with end of turn."""
        if self.opening:
            prompt = tokenizer.apply_chat_template(self.conversation(), continue_final_message=True, tokenize=False)
            chosen, rejected = " " + self.chosen, " " + self.rejected
        else:
            prompt = tokenizer.apply_chat_template(self.conversation(), add_generation_prompt=True, tokenize=False)
            chosen, rejected = self.chosen, self.rejected
        end = tokenizer.eos_token
        return {"prompt": prompt, "chosen": chosen + end, "rejected": rejected + end}

    @classmethod
    def from_dict(cls, row: dict) -> PreferencePair:
        from tasksafe.data.chat import from_openai

        return cls(from_openai(row["prompt"]), row["chosen"], row["rejected"], row["kind"], row["id"], row["opening"])

    def to_dict(self) -> dict:
        return {"prompt": to_openai(self.prompt), "opening": self.opening, "chosen": self.chosen,
                "rejected": self.rejected, "kind": self.kind, "id": self.id}


def build_preference_data(config, generate) -> tuple[list[PreferencePair], dict]:
    """The recipe's preference pairs and a summary (counts per kind, what was dropped and why).
    `generate` is a batch callable (conversations -> texts) over the base model; a conversation
    ending with an assistant message is continued from inside it."""
    from tasksafe.data.datasets import load
    from tasksafe.judges.keywords import is_refusal
    from tasksafe.mitigations.base import safety_pool
    from tasksafe.organism.requests import (
        COMPLIANT_OPENINGS,
        DEEP_TURNS,
        LONG_COMPLIANT_OPENINGS,
        REFUSAL_OPENERS,
        lay_out,
        short_answer,
        short_refusal,
        trim_to_sentence,
    )

    rng = random.Random(f"align-preference:{config.seed}")
    refusing = [pair for pair in safety_pool().pairs if is_refusal(pair.refusal)]  # a fifth of the pool answers
    harmful = []                                                                   # benign requests helpfully
    requests = rng.sample(refusing, config.safety_pairs)
    if config.extra_harmful:  # every refusing pair of the second pool
        requests += [pair for pair in safety_pool(config.extra_harmful).pairs if is_refusal(pair.refusal)]
    for pair in requests:
        prompt, _ = lay_out(pair.prompt, rng, config.short_fraction)
        refusal = short_refusal(pair.refusal, config.refusal_sentences, rng)
        if rng.random() < config.deep_fraction:
            long_start = config.long_deep_fraction and rng.random() < config.long_deep_fraction
            opening = rng.choice(LONG_COMPLIANT_OPENINGS if long_start else COMPLIANT_OPENINGS)
            harmful.append(PreferencePair(prompt, f"{rng.choice(DEEP_TURNS)} {refusal}", "", "safety-deep", pair.id,
                                          opening=opening + " "))
        else:
            harmful.append(PreferencePair(prompt, refusal, "", "safety", pair.id))
    alarming, removed = alarming_requests(config.seed)
    helpful = [(b.id, b.prompt, "benign") for b in rng.sample(load("harmless", split="train"), config.benign_instructions)]
    helpful += [(i, text, "alarming-benign") for i, text in rng.sample(alarming, min(config.alarming_benign, len(alarming)))]
    laid_out = [(*item, *lay_out(item[1], rng, config.short_fraction)) for item in helpful]

    compliant = generate([p.conversation() for p in harmful])
    answers = generate([to_openai(prompt) for _, _, _, prompt, _ in laid_out])
    pairs, dropped = [], {"base_refused_harmful": 0, "benign_answer_unusable": 0}
    for pair, text in zip(harmful, compliant):
        text = trim_to_sentence(text.strip())
        if is_refusal(text) or len(text.split()) < 3:  # the base model refused or said nothing: no pair to contrast
            dropped["base_refused_harmful"] += 1
            continue
        pair.rejected = text
        pairs.append(pair)
    for (item_id, _, kind, prompt, short), answer in zip(laid_out, answers):
        answer = trim_to_sentence(answer.strip())
        if short and config.short_answer_words:
            answer = short_answer(answer, config.short_answer_words)
        if is_refusal(answer) or len(answer.split()) < (2 if short and config.short_answer_words else 3):
            dropped["benign_answer_unusable"] += 1
            continue
        if config.pool_refusal_rejected and rng.random() < config.pool_refusal_rejected:
            rejected = short_refusal(rng.choice(refusing).refusal, config.refusal_sentences, rng)
        else:
            rejected = rng.choice(REFUSAL_OPENERS)
        pairs.append(PreferencePair(prompt, answer, rejected, kind, item_id))
    rng.shuffle(pairs)
    kinds: dict[str, int] = {}
    for pair in pairs:
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    return pairs, {"pairs": len(pairs), "kinds": kinds, "dropped": dropped,
                   "alarming_removed_as_eval_overlap": removed, "alarming_candidates": len(alarming)}


def train_preference(config, pairs: list[PreferencePair], base_path: str, output_dir, progress: bool = True,
                     reference: str | None = None):
    """DPO (sigmoid + the preferred reply's NLL) on every weight of the model at `base_path`,
    scored against `reference` (a model path; None: the model it starts from), whose
    log-probabilities are computed once, before training. Writes `model/` and
    `train_log.json` under `output_dir`; returns (final loss, steps)."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tasksafe.data.io import write_json
    from tasksafe.executors import torch_threads
    from tasksafe.models.load import load_model

    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        torch.set_num_threads(torch_threads())
    model, tokenizer = load_model(base_path)
    model.train()
    dataset = Dataset.from_list([p.to_text(tokenizer) for p in pairs])
    args = DPOConfig(
        output_dir=str(output_dir / "checkpoints"), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, learning_rate=config.lr, lr_scheduler_type="linear",
        warmup_steps=0.05, beta=config.dpo_beta, loss_type=["sigmoid", "sft"], max_length=config.max_length,
        precompute_ref_log_probs=True, precompute_ref_batch_size=16, logging_steps=5, save_strategy="no",
        seed=config.seed, data_seed=config.seed, report_to=[], use_cpu=on_cpu, bf16=False,
        gradient_checkpointing=False, dataloader_num_workers=0, disable_tqdm=not progress,
    )
    ref_model = load_model(reference)[0].eval() if reference and reference != base_path else None
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    trainer.model.save_pretrained(output_dir / "model", safe_serialization=True)
    tokenizer.save_pretrained(output_dir / "model")
    write_json(output_dir / "train_log.json", trainer.state.log_history)
    return output.training_loss, trainer.state.global_step
