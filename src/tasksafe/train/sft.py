"""Fine-tuning with TRL's SFTTrainer: PEFT LoRA (default) or full, loss on assistant tokens
only (the output layer computed only where a token is trained), the tokenizer's chat template,
CPU-aware defaults (fp32; `precision: auto` holds a LoRA's frozen base in bf16 where the CPU
runs it faster, the adapter in fp32; no gradient checkpointing; all cores), length-grouped batches,
checkpoints to resume from. The same entry point runs
under `accelerate launch` on many GPUs (see docs/models.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tasksafe import __version__
from tasksafe.data.chat import read_examples
from tasksafe.data.io import atomic_write, write_json
from tasksafe.executors import torch_threads
from tasksafe.train.config import FinetuneConfig
from tasksafe.train.tokenize import tokenize_dataset


@dataclass
class RunResult:
    run_dir: Path
    train_loss: float | None
    steps: int
    log: list[dict]
    tokens: int = 0  # training tokens processed (non-padding, every epoch)
    valid_loss: float | None = None
    computed_tokens: int = 0  # token positions the forward passes computed, padding included (CPU trainer)


def protect_sidecar(data: str | Path):
    """The typed sidecar (`ProtectionRecord`) `tasksafe protect` wrote next to a training set, if any."""
    from tasksafe.data.sidecar import read_protection

    return read_protection(data)


def _model_card(config: FinetuneConfig, result_loss: float | None, steps: int, meta) -> str:
    mitigation = (meta.mitigation.get("name") if meta else None) or "none (data not from tasksafe protect)"
    return (f"# tasksafe fine-tuning run\n\n- base model: `{config.model}`\n- method: {config.method}"
            f"{f' (r={config.lora_r}, alpha={config.alpha})' if config.method == 'lora' else ''}\n"
            f"- data: `{config.data}`\n- mitigation: {mitigation}\n- epochs {config.epochs}, lr {config.lr}, "
            f"batch {config.batch_size} x {config.grad_accum}, max length {config.max_length}, seed {config.seed}\n"
            f"- steps: {steps}, final training loss: {result_loss}\n- tasksafe {__version__}\n\n"
            "Loss is computed on assistant tokens only. `config.json` holds the exact configuration, "
            "`train_log.json` the loss curve, `hook.json` the inference hook to apply at generation time.\n")


def train_precision(config: FinetuneConfig, device: str) -> str:
    """The precision the base weights are loaded in: on a CPU, bf16 for LoRA when
    `config.precision` resolves to it (the adapter stays fp32); fp32 for full fine-tuning and
    on CUDA, where the Trainer's bf16 autocast does the mixed precision instead."""
    from tasksafe.models.precision import resolve

    if device != "cpu" or config.method == "full":
        return "fp32"
    return resolve(config.precision, device)


def trained_positions_loss(model, inputs: dict, num_items_in_batch=None, per_example: bool = False,
                           accumulation: int = 1):
    """The causal-LM loss (mean negative log-likelihood of the trained tokens), with the output
    layer and the softmax computed only where a token is trained.

    transformers computes logits for every position and upcasts them all to fp32 before the
    loss; with a 49k-token vocabulary and the loss on the assistant's reply alone (a label is a
    few tokens of a 100-token example) that was most of the output layer's work and memory
    traffic. The value is the same: sum of -log p over labels != -100, divided by the number of
    such tokens (or by `num_items_in_batch`, the Trainer's count over accumulated batches).

    `per_example`: each example's mean over its own trained tokens, averaged over the examples
    (over the `accumulation` micro-batches when the Trainer counts across them), so a short reply
    weighs as much as a long one; asked for by a protected set's sidecar (`training.loss`)."""
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    hidden = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                position_ids=inputs.get("position_ids"), use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    trained = targets != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][trained]).float()
    if per_example:
        losses = F.cross_entropy(logits, targets[trained], reduction="none")
        return _per_example_mean(losses, trained, num_items_in_batch, accumulation)
    total = F.cross_entropy(logits, targets[trained], reduction="sum")
    return total / (num_items_in_batch if num_items_in_batch is not None else trained.sum().clamp(min=1))


def _per_example_mean(losses, trained, num_items_in_batch, accumulation: int):
    """The mean over examples of each example's mean token loss (`losses`: one per trained
    token, in `trained.nonzero()` order), over the accumulated micro-batches when the Trainer
    counts across them."""
    rows = trained.nonzero()[:, 0]  # the example of each trained token, in the same order
    counts = trained.sum(dim=1)
    sums = losses.new_zeros(trained.shape[0]).index_add(0, rows, losses)
    present = counts > 0
    means = sums[present] / counts[present]
    examples = present.sum().clamp(min=1) * (accumulation if num_items_in_batch is not None else 1)
    return means.sum() / examples


def reply_positions(trained):
    """For each position of a (batch, length) mask of trained tokens, its place in its run of
    trained tokens: 1 for the first token of a reply (or after an untrained opening), 2 for the
    next, ...; 0 where nothing is trained.

    >>> import torch
    >>> reply_positions(torch.tensor([[False, True, True, False, True]])).tolist()
    [[0, 1, 2, 0, 1]]
    """
    import torch

    index = torch.arange(trained.shape[1], device=trained.device).expand_as(trained)
    last_untrained = torch.where(trained, torch.full_like(index, -1), index).cummax(dim=1).values
    return torch.where(trained, index - last_untrained, torch.zeros_like(index))


def constrained_loss(model, inputs: dict, constraint, reference_model=None, num_items_in_batch=None,
                     per_example: bool = False, accumulation: int = 1):
    """The token-wise constrained objective (tasksafe.train.objective) at the trained positions.
    The reference log-probabilities come from one forward pass per batch without gradients: the
    LoRA model with its adapter switched off, or `reference_model` (a frozen copy of the starting
    weights) for a full fine-tune. Reduced like the plain loss (per token, or per example)."""
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    targets = labels[:, 1:]
    trained = targets != -100
    forward = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask"),
               "position_ids": inputs.get("position_ids"), "use_cache": False}
    hidden = base.get_decoder()(**forward).last_hidden_state
    logprobs = F.log_softmax(base.get_output_embeddings()(hidden[:, :-1][trained]).float(), dim=-1)
    with torch.no_grad():
        if reference_model is None:
            with model.disable_adapter():
                ref_hidden = base.get_decoder()(**forward).last_hidden_state
            ref_head = base.get_output_embeddings()
        else:
            ref_hidden = reference_model.get_decoder()(**forward).last_hidden_state
            ref_head = reference_model.get_output_embeddings()
        ref_logprobs = F.log_softmax(ref_head(ref_hidden[:, :-1][trained]).float(), dim=-1)
    chosen = targets[trained].unsqueeze(1)
    ratio = logprobs.gather(1, chosen).squeeze(1) - ref_logprobs.gather(1, chosen).squeeze(1)
    positions = reply_positions(trained)[trained]
    beta = torch.where(positions == 1, constraint.beta_first,
                       torch.where(positions <= constraint.early_tokens, constraint.beta_early, constraint.beta_rest))
    beta = beta.to(ratio.dtype)
    losses = -(2 / beta) * F.logsigmoid(beta * ratio)
    if constraint.kl:
        kl = (ref_logprobs.exp() * (ref_logprobs - logprobs)).sum(dim=-1)
        if constraint.kl_tokens:  # only where a reply starts
            kl = torch.where(positions <= constraint.kl_tokens, kl, torch.zeros_like(kl))
        losses = losses + constraint.kl * kl
    if per_example:
        return _per_example_mean(losses, trained, num_items_in_batch, accumulation)
    return losses.sum() / (num_items_in_batch if num_items_in_batch is not None else trained.sum().clamp(min=1))


def _trainer_class(plain_loss: bool, reference: bool = False, per_example: bool = False, constraint=None,
                   reference_model=None):
    """TRL's SFTTrainer; on CPU, or for a per-example loss on any device, with
    `trained_positions_loss`.

    TRL computes the loss through a chunked "fused" LM head that also derives entropy and
    token-accuracy metrics every step; that saves GPU memory on large vocabularies but costs
    time on a CPU (benchmarks/train_throughput.py times the loop), and transformers' own loss
    computes the output layer at every position. The loss is the same: mean negative log-likelihood over the
    assistant tokens. With a `constraint` (on any device) the loss is `constrained_loss`."""
    from trl import SFTTrainer

    if not plain_loss and not per_example and constraint is None:
        return SFTTrainer

    class TrainedPositionsSFTTrainer(SFTTrainer):
        computed_tokens = 0  # positions computed in training, padding included

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.computed_tokens += inputs["input_ids"].numel()
            if reference or return_outputs or "labels" not in inputs:  # evaluation with predictions: the ordinary path
                from transformers import Trainer

                return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            averaged = per_example and model.training  # validation keeps the per-token loss, comparable across runs
            if constraint is not None and model.training:
                loss = constrained_loss(model, inputs, constraint, reference_model, num_items_in_batch,
                                        per_example=averaged, accumulation=self.args.gradient_accumulation_steps)
            else:
                loss = trained_positions_loss(model, inputs, num_items_in_batch, per_example=averaged,
                                              accumulation=self.args.gradient_accumulation_steps)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None and not averaged:
                loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss does (a per-example mean
                # is already a mean on each device, and the devices' gradients are averaged)
            return loss

    return TrainedPositionsSFTTrainer


def finetune(config: FinetuneConfig, progress: bool = True, callbacks: list | None = None,
             reference: bool = False) -> RunResult:
    """Train and write the run directory: adapter/ (LoRA, safetensors) or model/ (full),
    config.json, train_log.json, hook.json, README.md. When the data came from `tasksafe
    protect` with a mitigation that has a post-training step (Safe LoRA), the step is applied
    before adapter/ appears, so a finished run is always the protected one. Rerunning into the
    same directory resumes from its last checkpoint. `reference` computes the loss as builds
    before the fast path did (the output layer at every position), for the organism's recipes,
    whose rebuilds must give the same weights."""
    import torch

    from tasksafe.mitigations.base import run_post_training
    from tasksafe.models.load import load_model

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        torch.set_num_threads(torch_threads())
    meta = protect_sidecar(config.data)
    post_training = meta.post_training if meta else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(config.model, precision=train_precision(config, device))
    model.train()
    dataset = tokenize_dataset(tokenizer, read_examples(config.data), config.max_length)
    objective = training_objective(config.data, meta.training if meta else None)
    write_json(run_dir / "config.json", {**config.model_dump(mode="json"), "tasksafe_version": __version__,
                                         "examples": len(dataset), "loss": objective.loss,
                                         **({"objective": objective.to_sidecar()} if objective.constrained else {})})
    write_json(run_dir / "hook.json", meta.inference_hook if meta else None)
    if post_training:
        write_json(run_dir / "post_training.json", post_training)
    reference_model = None
    if objective.constrained and config.method == "full":  # a LoRA run's reference is its base, adapter off
        reference_model, _ = load_model(config.model, precision=train_precision(config, device))
        reference_model.requires_grad_(False)
    trainer = _trainer(config, model, tokenizer, dataset, run_dir, progress, callbacks, reference,
                       per_example=objective.loss == "per-example", constraint=objective.constrained,
                       reference_model=reference_model)
    resume = _last_complete_checkpoint(run_dir)
    if resume:
        write_json(run_dir / "resumed_from.json", {"checkpoint": resume})
    output = trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        kind = "adapter" if config.method == "lora" else "model"
        trainer.model.save_pretrained(run_dir / (f"{kind}-trained" if post_training else kind), safe_serialization=True)
        if config.method == "full":
            tokenizer.save_pretrained(run_dir / kind)
        write_json(run_dir / "train_log.json", trainer.state.log_history)
        (run_dir / "README.md").write_text(_model_card(config, output.training_loss, trainer.state.global_step, meta))
        run_post_training(run_dir, post_training, config.model)
    valid_loss = _validation_loss(trainer, tokenizer, config, run_dir)
    return RunResult(run_dir, output.training_loss, trainer.state.global_step, trainer.state.log_history,
                     int(trainer.state.num_input_tokens_seen or 0), valid_loss, getattr(trainer, "computed_tokens", 0))


def training_objective(data: str | Path, training: dict | None):
    """The objective a protected set's sidecar asks for (`training`; plain SFT without one); a
    sidecar that asks for one this version does not know is an error naming the file."""
    from pydantic import ValidationError

    from tasksafe.data.sidecar import sidecar_path
    from tasksafe.errors import UserError
    from tasksafe.settings import validation_message
    from tasksafe.train.objective import TrainingObjective

    try:
        return TrainingObjective.model_validate(training or {})
    except ValidationError as err:
        raise UserError(validation_message(err, f"{sidecar_path(data)}: training")) from None


def _validation_loss(trainer, tokenizer, config: FinetuneConfig, run_dir: Path) -> float | None:
    """The trained model's loss on `config.validation_data` (assistant tokens, as in training),
    written to validation.json; None without validation data."""
    if not config.validation_data:
        return None
    examples = read_examples(config.validation_data)
    metrics = trainer.evaluate(eval_dataset=tokenize_dataset(tokenizer, examples, config.max_length))
    loss = float(metrics["eval_loss"])
    write_json(run_dir / "validation.json", {"data": config.validation_data, "examples": len(examples), "loss": loss})
    return loss


def _trainer(config: FinetuneConfig, model, tokenizer, dataset, run_dir: Path, progress: bool, callbacks,
             reference: bool = False, per_example: bool = False, constraint=None, reference_model=None):
    """TRL's trainer for `config`, with CPU-aware settings and a callback that keeps the log."""
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig

    on_cpu = not torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(run_dir / "checkpoints"), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr, lr_scheduler_type="linear", warmup_steps=0.05, weight_decay=config.weight_decay,
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        seed=config.seed, data_seed=config.seed, report_to=[], use_cpu=on_cpu,
        bf16=not on_cpu and config.precision != "fp32" and torch.cuda.is_bf16_supported(),
        activation_checkpointing=not on_cpu,  # TRL turns it on by default; on CPU it is many times slower
        train_sampling_strategy="group_by_length", max_length=config.max_length,
        dataloader_num_workers=0, disable_tqdm=not progress, remove_unused_columns=True,
        include_num_input_tokens_seen="non_padding",
    )
    peft_config = None
    if config.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.alpha, lora_dropout=config.lora_dropout,
                                 target_modules=config.lora_targets, task_type="CAUSAL_LM")

    class KeepLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            with atomic_write(run_dir / "train_log.json") as handle:
                json.dump(state.log_history, handle, indent=1)

    trainer_class = _trainer_class(plain_loss=on_cpu, reference=reference, per_example=per_example,
                                   constraint=constraint, reference_model=reference_model)
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=peft_config, callbacks=[KeepLog(), *(callbacks or [])])
    if not progress:  # without a bar transformers prints every log as a dict; train_log.json keeps them
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def _last_complete_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint to resume from. A kill while a checkpoint is being written leaves
    a folder without trainer_state.json (the Trainer writes it last); such folders are skipped."""
    checkpoints = sorted((p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                         key=lambda p: int(p.name.split("-")[1]))
    return str(checkpoints[-1]) if checkpoints else None
