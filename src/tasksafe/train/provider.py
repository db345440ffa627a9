"""The provider-API backend: send a fine-tuning job to any OpenAI-compatible service with the
official `openai` client (upload the file, create the job, poll with backoff while streaming
its events, record the resulting model id)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tasksafe.data.chat import read_examples
from tasksafe.data.io import write_json
from tasksafe.errors import MissingDependencyError, UserError

TERMINAL = {"succeeded", "failed", "cancelled"}


def _openai_training_file(data: str | Path) -> Path:
    """The training set as the API expects it: only `messages` (role, content, weight)."""
    examples = read_examples(data)
    handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
    with handle:
        for example in examples:
            messages = [{"role": m.role, "content": m.content, **({"weight": m.weight} if m.weight is not None else {})}
                        for m in example.messages]
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return Path(handle.name)


def run_provider_job(base_url: str, model: str, data: str | Path, output_dir: str | Path, epochs: float = 1,
                     seed: int = 0, api_key: str | None = None, poll_seconds: float = 2.0, max_poll_seconds: float = 60.0,
                     timeout_seconds: float = 24 * 3600, echo: Callable[[str], None] = print,
                     sleep: Callable[[float], None] = time.sleep, cancelled: Callable[[], bool] | None = None) -> dict:
    """Run one job to its end and write `provider_job.json` in `output_dir`; returns it.
    Transient server errors are retried by the client; a failed job raises `UserError`. When
    `cancelled()` turns true the provider's job is cancelled and the record returned with
    status `cancelled`."""
    from tasksafe.data.sidecar import read_sidecar

    training = (read_sidecar(data) or {}).get("training")
    if training:
        raise UserError(f"{data}: its protection asks training for {training}, which a provider's fine-tuning API "
                        "does not take; protect it without that option or train locally")
    try:
        import openai
    except ImportError:
        raise MissingDependencyError("openai") from None
    client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "unused"),
                           max_retries=5)
    upload = _openai_training_file(data)
    record: dict = {"base_url": base_url, "model": model, "data": str(data), "epochs": epochs, "seed": seed}
    try:
        with open(upload, "rb") as handle:
            file = client.files.create(file=handle, purpose="fine-tune")
        record["training_file"] = file.id
        job = client.fine_tuning.jobs.create(model=model, training_file=file.id, seed=seed,
                                             hyperparameters={"n_epochs": int(epochs) if epochs == int(epochs) else epochs})
    except openai.APIError as err:
        raise UserError(f"the fine-tuning API at {base_url} refused the job: {err}") from None
    finally:
        upload.unlink(missing_ok=True)
    record["job_id"] = job.id
    echo(f"job {job.id} created ({job.status})")
    seen: set[str] = set()
    delay, started = poll_seconds, time.monotonic()
    while job.status not in TERMINAL:
        if time.monotonic() - started > timeout_seconds:
            raise UserError(f"job {job.id} did not finish within {timeout_seconds:.0f} s")
        sleep(delay)
        delay = min(max_poll_seconds, delay * 1.5)
        if cancelled is not None and cancelled():
            client.fine_tuning.jobs.cancel(job.id)
            record.update({"status": "cancelled", "fine_tuned_model": None, "error": None})
            write_json(Path(output_dir) / "provider_job.json", record)
            return record
        job = client.fine_tuning.jobs.retrieve(job.id)
        events = client.fine_tuning.jobs.list_events(job.id, limit=50)
        for event in reversed(events.data):  # the API lists newest first
            if event.id not in seen:
                seen.add(event.id)
                echo(f"  [{event.level}] {event.message}")
    record.update({"status": job.status, "fine_tuned_model": job.fine_tuned_model,
                   "trained_tokens": getattr(job, "trained_tokens", None),
                   "error": job.error.model_dump() if getattr(job, "error", None) else None})
    write_json(Path(output_dir) / "provider_job.json", record)
    if job.status != "succeeded":
        reason = (record["error"] or {}).get("message") or job.status
        raise UserError(f"fine-tuning job {job.id} {job.status}: {reason}")
    return record
