"""What the dashboard shows, computed from the state (the templates only lay it out): a row per
job with its file, audit and error, and a job page with its audit, protection, loss curve, gate
and timestamped events. Everything shown while a job runs comes from its events and its file,
so an unfinished or failed job shows what has happened, not "-"."""

from __future__ import annotations

import datetime
import math

from tasksafe.gateway.state import FINISHED, State


def when(stamp: int | None) -> str:
    """A Unix time as "2026-12-04 03:57:45 UTC" ("-" for none)."""
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_rows(state: State, tenant: str) -> list[dict]:
    """The jobs table: created, file name, model, status, audit risk, error code, released model."""
    rows = []
    for job in state.list_jobs(tenant, limit=200):
        file = state.get_file(tenant, job["training_file"]) or {}
        rows.append({"id": job["id"], "created": when(job["created_at"]), "file": file.get("filename", "(deleted)"),
                     "model": job["model"], "status": job["status"],
                     "audit": (file.get("precheck") or {}).get("risk", "-"),
                     "error": (job.get("error") or {}).get("code") or "", "released": job["fine_tuned_model"] or "-"})
    return rows


def job_view(state: State, tenant: str, job: dict) -> dict:
    """The job page's parts."""
    events = state.events(job["id"], limit=10_000)
    file = state.get_file(tenant, job["training_file"])
    audit = file["precheck"] if file else {"risk": "-", "examples": "-", "findings": []}
    protection = job["protection"] or _latest(events, "protection")
    if protection and protection.get("allocation"):
        frames = protection["allocation"]["frames"]
        for frame in frames:  # one frame is the whole file: its risk is the audit's
            frame["risk"] = audit["risk"] if frame["risk"] == "-" and len(frames) == 1 else frame["risk"]
    return {"job": job, "file": file, "audit": audit, "protection": protection,
            "protection_note": _protection_note(job, events), "gate": job["gate"] or _latest(events, "gate"),
            "gate_note": "" if job["status"] not in FINISHED else f"Not run: the job {job['status']} before the gate.",
            "curve": loss_curve(events), "created": when(job["created_at"]),
            "events": [{**e, "when": when(e["created_at"])} for e in reversed(events)]}


def _latest(events: list[dict], kind: str) -> dict | None:
    return next((e["data"] for e in events if e["type"] == kind and e["data"]), None)  # events are newest first


def _protection_note(job: dict, events: list[dict]) -> str:
    if any(e["type"] == "protection" for e in events):
        return ""
    if job["status"] in FINISHED or any(e["type"] == "metrics" for e in events):
        return "None: the policy does not protect this job."
    return "Not applied yet."


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def loss_curve(events: list[dict], width: int = 600, height: int = 220) -> dict | None:
    """The training loss by step as an SVG polyline with axes from 0 (so noise looks like noise):
    y from 0 to a round value above the highest loss, x from step 0 to the last step."""
    points = sorted({e["data"]["step"]: e["data"]["train_loss"] for e in events
                     if e["type"] == "metrics" and e["data"] and "train_loss" in e["data"]}.items())
    if not points:
        return None
    left, right, top, bottom = 50, width - 10, 10, height - 30
    last, ceiling = max(step for step, _ in points) or 1, _nice_top(max(loss for _, loss in points))

    def x(step: float) -> float:
        return left + (right - left) * step / last

    def y(loss: float) -> float:
        return bottom - (bottom - top) * loss / ceiling

    return {"points": " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points), "width": width, "height": height,
            "left": left, "right": right, "top": top, "bottom": bottom, "ceiling": ceiling, "last_step": last,
            "ticks": [{"y": y(ceiling * f), "label": f"{ceiling * f:g}"} for f in (0, 0.5, 1)]}
