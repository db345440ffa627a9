"""The provider gateway's load curve: offered load (requests per second from paced clients on
loopback) against p99 latency per kind of request, while a training job runs. Reports the knee
(the lowest offered load at which list/retrieve p99 crosses 100 ms), the highest throughput
and whether the offered load was still served (saturation: under 80% of it completed), errors
and lost jobs. Chat is measured at the end on its own, on a model released by
a short job: one client, then four at once.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/gateway_curve.py [--loads 10,20,40,80,160] [--seconds 15]
    ... --src OTHER/src   # the server runs another checkout's code (the old code, side by side)

Each step runs `--clients` clients, each sending one request every clients/load seconds from a
random offset; most requests list or retrieve jobs or read events, one in 25 uploads a file or
creates (and cancels) a job. Ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import openai
from gateway_load import Tally, start_server  # the same server and requests in both benchmarks

from tasksafe.data.chat import write_chat_jsonl
from tasksafe.gateway.state import State
from tasksafe.strategies import build_dataset

READS = ("list", "retrieve", "events", "list", "retrieve")
KINDS = ("list", "retrieve", "events", "upload", "create")


def _p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else float("nan")


def step(api_for, ids: dict, data: Path, load: float, clients: int, seconds: float, created: list) -> dict:
    """One offered load: per-kind latencies, completed requests per second, errors."""
    tally = Tally(created)
    latencies, errors = tally.latencies, tally.errors
    interval = clients / load
    stop = time.time() + seconds

    def client(index: int) -> None:
        api = api_for()
        due = time.time() + random.Random(index).uniform(0, interval)
        i = 0
        while True:
            time.sleep(max(0.0, due - time.time()))
            if time.time() >= stop:
                return
            due += interval
            kind = READS[i % 5] if (i + index) % 25 else ("upload" if index % 2 else "create")
            i += 1
            tally.send(api, kind, ids["job"], ids["file"], data)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    done = sum(len(v) for v in latencies.values())
    out = {"offered_rps": load, "completed_rps": round(done / elapsed, 1), "errors": len(errors),
           "first_error": errors[0] if errors else None}
    for kind, values in latencies.items():
        if values:
            out[kind] = {"n": len(values), "p50_ms": round(statistics.median(values), 1), "p99_ms": round(_p99(values), 1)}
    reads = latencies["list"] + latencies["retrieve"]
    out["read_p99_ms"] = round(_p99(reads), 1)
    return out


def chat_latency(api, model: str, concurrent: int) -> dict:
    """`concurrent` chat requests at once (8 new tokens each): p50 and max seconds."""
    times, errors = [], []

    def one() -> None:
        start = time.perf_counter()
        try:
            api.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)
            times.append(time.perf_counter() - start)
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}"[:200])

    threads = [threading.Thread(target=one) for _ in range(concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"concurrent": concurrent, "p50_s": round(statistics.median(times), 2) if times else None,
            "max_s": round(max(times), 2) if times else None, "errors": len(errors)}


def released_model_chat(api, file_id: str, long_job: str, wait_s: float = 300) -> list[dict]:
    """Chat needs a released model: the long job is cancelled, a one-epoch job trained and
    gated, then its model asked by one client and by four at once ([] if it does not succeed)."""
    if api.fine_tuning.jobs.retrieve(long_job).status not in ("succeeded", "failed", "cancelled"):
        api.fine_tuning.jobs.cancel(long_job)
    job = api.fine_tuning.jobs.create(model="tiny-random", training_file=file_id, hyperparameters={"n_epochs": 1})
    deadline = time.time() + wait_s
    while time.time() < deadline:
        job = api.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(2)
    if job.status != "succeeded" or not job.fine_tuned_model:
        print(f"chat not measured: the short job ended {job.status}")
        return []
    chat_latency(api, job.fine_tuned_model, 1)  # loads the model once
    return [chat_latency(api, job.fine_tuned_model, n) for n in (1, 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default="10,20,40,80,160,320", help="offered loads, requests per second")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per load step")
    parser.add_argument("--src", help="run the server from this src folder (another checkout's code)")
    parser.add_argument("--api-workers", type=int, default=1, help="tasksafe serve --api-workers")
    args = parser.parse_args()
    loads = [float(x) for x in args.loads.split(",")]
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = State(root / "state").create_key("load")
        (root / "policy.yaml").write_text("models: [tiny-random]\n"
                                          "gate: {n: 4, overrefusal_n: 4, max_plain: 1.0, max_in_format: 1.0}\n")
        data, long = root / "train.jsonl", root / "long.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "benign", n=200, seed=0))
        write_chat_jsonl(long, build_dataset("sst2", "benign", n=2000, seed=0))  # a job that trains through the run
        server, base = start_server(root, args.api_workers, env)
        try:
            def api_for():
                return openai.OpenAI(api_key=key, base_url=base, max_retries=0, timeout=30)

            setup = api_for()
            with open(data, "rb") as f:
                uploaded = setup.files.create(file=f, purpose="fine-tune")
            with open(long, "rb") as f:
                long_file = setup.files.create(file=f, purpose="fine-tune")
            training = setup.fine_tuning.jobs.create(model="tiny-random", training_file=long_file.id,
                                                     hyperparameters={"n_epochs": 20})
            ids, created = {"file": uploaded.id, "job": training.id}, [training.id]
            time.sleep(5)  # the worker picks the job up and starts training
            steps = []
            for load in loads:
                steps.append(step(api_for, ids, data, load, args.clients, args.seconds, created))
                s = steps[-1]
                print(f"offered {load:>6.0f}/s  completed {s['completed_rps']:>6.1f}/s  read p99 {s['read_p99_ms']:>7.1f} ms  "
                      + "  ".join(f"{k} {s[k]['p99_ms']:.0f}" for k in KINDS if k in s) + f"  errors {s['errors']}",
                      flush=True)
            listed = {j.id for j in setup.fine_tuning.jobs.list(limit=1000)}
            lost = sorted(set(created) - listed)
            status = setup.fine_tuning.jobs.retrieve(training.id).status
            chat = released_model_chat(setup, uploaded.id, training.id)
        finally:
            server.terminate()
            server.wait(timeout=30)
    knee = next((s["offered_rps"] for s in steps if s["read_p99_ms"] > 100), None)
    saturation = max(s["completed_rps"] for s in steps)
    saturated = any(s["completed_rps"] < 0.8 * s["offered_rps"] for s in steps)  # the offered load no longer served
    for c in chat:
        print(f"chat, {c['concurrent']} at once: p50 {c['p50_s']} s, max {c['max_s']} s, errors {c['errors']}")
    print(f"knee (list/retrieve p99 over 100 ms): {'not reached' if knee is None else f'{knee:g} requests/s offered'}; "
          f"highest throughput {saturation:g} requests/s ({'' if saturated else 'not '}saturated); "
          f"errors {sum(s['errors'] for s in steps)}; jobs lost {len(lost)}; training job {status}")
    print(json.dumps({"benchmark": "gateway_curve", "src": args.src or "this checkout", "clients": args.clients,
                      "seconds_per_step": args.seconds, "steps": steps, "chat": chat, "knee_rps": knee,
                      "highest_rps": saturation, "saturated": saturated, "lost_jobs": len(lost), "training_status": status,
                      # make bench's pass: no errors, no lost jobs (the knee's 2x target is read side by side, --src)
                      "pass": not lost and not any(s["errors"] for s in steps)}))


if __name__ == "__main__":
    main()
