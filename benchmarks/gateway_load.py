"""Load on the provider gateway: N concurrent clients on loopback (uploads, job creation,
list and retrieve, event polling) while a training job runs, for a bounded time. Prints
p50/p99 latency per kind of request and the errors. Target: p99 of list/retrieve under
100 ms with 50 clients, no errors, no lost jobs.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/gateway_load.py [--clients 50] [--seconds 30] [--interval 0]

By default each client sends its next request as soon as the last one is answered (a
saturation test: latency is then mostly queueing behind the other clients, on the same 2 cores
as the clients themselves); `--interval S` paces each client to one request every S seconds
(from a random offset), as polling clients do.

Ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai

from tasksafe.data.chat import write_chat_jsonl
from tasksafe.gateway.state import State
from tasksafe.strategies import build_dataset


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(api, kind: str, job_id: str, file_id: str, data: Path) -> str | None:
    """One request of `kind` (list, retrieve, events, upload, create); a created job's id (it is
    cancelled at once), else None."""
    if kind == "list":
        api.fine_tuning.jobs.list(limit=20)
    elif kind == "retrieve":
        api.fine_tuning.jobs.retrieve(job_id)
    elif kind == "events":
        api.fine_tuning.jobs.list_events(job_id, limit=20)
    elif kind == "upload":
        with open(data, "rb") as f:
            api.files.create(file=f, purpose="fine-tune")
    else:
        job = api.fine_tuning.jobs.create(model="tiny-random", training_file=file_id)
        api.fine_tuning.jobs.cancel(job.id)
        return job.id
    return None


def start_server(root: Path, api_workers: int = 1, env: dict | None = None,
                 log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`tasksafe serve` on a free loopback port over the state and policy under `root`, once it
    accepts connections (its output to `log`, or dropped); the process and the API's base URL."""
    port = _port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, "-m", "tasksafe.cli.main", "serve", "--port", str(port), "--state-dir",
                               str(root / "state"), "--policy", str(root / "policy.yaml"),
                               "--api-workers", str(api_workers)],
                              stdout=out, stderr=subprocess.STDOUT, env=env)
    if log:
        out.close()
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return server, f"http://127.0.0.1:{port}/v1"


class Tally:
    """Requests sent from many client threads, timed: latencies per kind, errors, created jobs."""

    def __init__(self, created: list[str] | None = None):
        self.latencies: dict[str, list[float]] = {k: [] for k in ("list", "retrieve", "events", "upload", "create")}
        self.errors: list[str] = []
        self.created: list[str] = created if created is not None else []
        self.lock = threading.Lock()

    def record(self, kind: str, call):
        """Time `call()` as a request of `kind`; its result, or None when it failed (counted)."""
        start = time.perf_counter()
        result = None
        try:
            result = call()
        except Exception as err:  # counted, the run goes on
            with self.lock:
                self.errors.append(f"{kind}: {type(err).__name__}: {err}"[:200])
        with self.lock:
            self.latencies[kind].append(1000 * (time.perf_counter() - start))
        return result

    def send(self, api, kind: str, job_id: str, file_id: str, data: Path) -> None:
        made = self.record(kind, lambda: send(api, kind, job_id, file_id, data))
        if made:
            with self.lock:
                self.created.append(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--api-workers", type=int, default=1, help="tasksafe serve --api-workers")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between one client's requests (0: back to back)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = State(root / "state")
        key = state.create_key("load")
        (root / "policy.yaml").write_text("models: [tiny-random]\n"
                                          "gate: {n: 4, overrefusal_n: 4, max_plain: 1.0, max_in_format: 1.0}\n")
        data = root / "train.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "benign", n=200, seed=0))
        server, base = start_server(root, args.api_workers)
        try:
            setup = openai.OpenAI(api_key=key, base_url=base, max_retries=0)
            with open(data, "rb") as f:
                uploaded = setup.files.create(file=f, purpose="fine-tune")
            training = setup.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                                     hyperparameters={"n_epochs": 20})  # outlasts the run
            tally = Tally([training.id])
            latencies, errors, created = tally.latencies, tally.errors, tally.created
            stop = time.time() + args.seconds

            def client(index: int) -> None:
                api = openai.OpenAI(api_key=key, base_url=base, max_retries=0, timeout=30)
                i = 0
                due = time.time() + random.Random(index).uniform(0, args.interval)
                while time.time() < stop:
                    if args.interval:
                        time.sleep(max(0.0, due - time.time()))
                        due += args.interval
                    kind = ("list", "retrieve", "events", "list", "retrieve")[i % 5] if i % 25 else \
                        ("upload" if index % 2 else "create")
                    tally.send(api, kind, training.id, uploaded.id, data)
                    i += 1

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            listed = {j.id for j in setup.fine_tuning.jobs.list(limit=1000)}
            lost = sorted(set(created) - listed)
            status = setup.fine_tuning.jobs.retrieve(training.id).status
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures = {}
    pace = f"one request every {args.interval:g} s each" if args.interval else "back to back"
    print(f"{args.clients} clients ({pace}) for {args.seconds:.0f} s on loopback, {args.api_workers} API process(es); "
          f"training job {status} at the end")
    print(f"{'request':<10}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for kind, values in latencies.items():
        if values:
            values.sort()
            p50, p99 = statistics.median(values), values[min(len(values) - 1, int(0.99 * len(values)))]
            figures[kind] = {"n": len(values), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
            print(f"{kind:<10}{len(values):>7}{p50:>9.1f}{p99:>9.1f}")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else "") + f"; jobs lost: {len(lost)}")
    read_p99 = max(figures[k]["p99_ms"] for k in ("list", "retrieve") if k in figures)
    print(json.dumps({"benchmark": "gateway_load", "clients": args.clients, "seconds": args.seconds,
                      "interval_s": args.interval,
                      "figures": figures, "errors": len(errors), "lost_jobs": len(lost),
                      "read_p99_ms": read_p99, "ratio": round(read_p99 / 100, 3), "target_ratio": 1.0,
                      "target": "<=", "pass": read_p99 < 100 and not errors and not lost}))


if __name__ == "__main__":
    main()
