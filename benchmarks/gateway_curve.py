"""The provider gateway's load curve: offered load (requests per second from paced clients on
loopback) against p99 latency per kind of request, while a training job runs. Reports the knee
(the lowest offered load at which list/retrieve p99 crosses 100 ms or under 90% of it is
served: `knee_at`), the highest throughput
and whether the offered load was still served (saturation: under 80% of it completed), errors
and lost jobs. Chat is measured at the end on its own, on a model released by
a short job: one client, then four at once.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/gateway_curve.py [--loads 10,20,40,80,160] [--seconds 15]
    ... --src OTHER/src   # the server runs another checkout's code (the old code, side by side)
    ... --profile DIR     # py-spy samples the server and the clients during each step (needs py-spy)

Each step runs `--clients` clients, each sending one request every clients/load seconds from a
random offset; most requests list or retrieve jobs or read events, one in 25 uploads a file or
creates (and cancels) a job. The clients run as threads of `--processes` processes, through the
`openai` package or (`--client raw`) reading over plain kept-alive `http.client` connections,
which cost the shared CPU far less; with `--client raw` the server's own time per read (its
`Server-Timing` header) is reported beside what the client saw. Ends with one line of JSON
holding the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import openai
from gateway_load import Tally, start_server  # the same server and requests in both benchmarks

from tasksafe.data.chat import write_chat_jsonl
from tasksafe.gateway.state import State
from tasksafe.strategies import build_dataset

READS = ("list", "retrieve", "events", "list", "retrieve")
KINDS = ("list", "retrieve", "events", "upload", "create")


def knee_at(step: dict) -> bool:
    """Whether latency has climbed at this step: list/retrieve p99 over 100 ms, or under 90% of
    the offered load served (the clients wait for each answer, so a saturated server shows as
    requests not sent rather than as latency)."""
    return step["read_p99_ms"] > 100 or step["completed_rps"] < 0.9 * step["offered_rps"]


def _p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else float("nan")


class RawReads:
    """Reads over one kept-alive `http.client` connection: a client that costs far less CPU
    per request than the `openai` package, so that on a shared machine the load generator does
    not take the CPU the server needs. Returns the server's own time (its Server-Timing
    header, None from code that does not send it)."""

    PATHS = {"list": "/fine_tuning/jobs?limit=20", "retrieve": "/fine_tuning/jobs/{job}",
             "events": "/fine_tuning/jobs/{job}/events?limit=20"}

    def __init__(self, base: str, key: str):
        parsed = urlsplit(base)
        self.host, self.port, self.prefix = parsed.hostname, parsed.port, parsed.path
        self.headers = {"Authorization": f"Bearer {key}"}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def get(self, kind: str, job_id: str) -> float | None:
        try:
            self.connection.request("GET", self.prefix + self.PATHS[kind].format(job=job_id), headers=self.headers)
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # a fresh connection next time
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            raise
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:120]!r}")
        timing = response.getheader("server-timing") or ""
        return float(timing.partition(";dur=")[2]) if ";dur=" in timing else None


def clients_process(base: str, key: str, ids: dict, data: str, indices: list[int], load: float, clients: int,
                    stop: float, raw: bool) -> dict:
    """One process's share of the clients (threads `indices` of `clients`), until `stop`:
    its latencies per kind, the server's own times for reads, errors and created jobs."""
    tally = Tally([])
    server_ms: list[float] = []
    interval = clients / load

    def client(index: int) -> None:
        api = openai.OpenAI(api_key=key, base_url=base, max_retries=0, timeout=30)
        reads = RawReads(base, key) if raw else None
        due = time.time() + random.Random(index).uniform(0, interval)
        i = 0
        while True:
            time.sleep(max(0.0, due - time.time()))
            if time.time() >= stop:
                return
            due += interval
            kind = READS[i % 5] if (i + index) % 25 else ("upload" if index % 2 else "create")
            i += 1
            if reads is None or kind not in RawReads.PATHS:
                tally.send(api, kind, ids["job"], ids["file"], Path(data))
                continue
            took = tally.record(kind, partial(reads.get, kind, ids["job"]))
            if took is not None:
                with tally.lock:
                    server_ms.append(took)

    threads = [threading.Thread(target=client, args=(i,)) for i in indices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": tally.latencies, "errors": tally.errors, "created": tally.created, "server_ms": server_ms}


def step(base: str, key: str, ids: dict, data: Path, load: float, clients: int, seconds: float, created: list,
         processes: int = 1, raw: bool = False, profile: tuple[dict, Path] | None = None) -> dict:
    """One offered load from `clients` paced clients spread over `processes` processes (each
    with its own interpreter lock): per-kind latencies, the server's own read times, completed
    requests per second, errors; with `profile` (process names to pids, a folder), py-spy
    samples each process meanwhile."""
    import concurrent.futures
    import multiprocessing

    began = time.time()
    stop = began + 1.0 + seconds  # the processes start within the second, their clients at once
    shares = [list(range(clients))[p::processes] for p in range(processes)]
    spies = []
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(clients_process, base, key, ids, str(data), share, load, clients, stop, raw)
                   for share in shares]
        time.sleep(max(0.0, stop - seconds - time.time()))
        if profile:
            pids = {**profile[0], **{f"clients-{n}": pid for n, pid in enumerate(pool._processes)}}
            spies = profile_step(pids, seconds, profile[1])
        parts = [f.result() for f in futures]
    for spy in spies:
        spy.wait(timeout=60)
    latencies = {k: [v for part in parts for v in part["latencies"][k]] for k in KINDS}
    errors = [e for part in parts for e in part["errors"]]
    created.extend(c for part in parts for c in part["created"])
    server_ms = [v for part in parts for v in part["server_ms"]]
    done = sum(len(v) for v in latencies.values())
    out = {"offered_rps": load, "completed_rps": round(done / (stop - began), 1), "errors": len(errors),
           "first_error": errors[0] if errors else None}
    for kind, values in latencies.items():
        if values:
            out[kind] = {"n": len(values), "p50_ms": round(statistics.median(values), 1), "p99_ms": round(_p99(values), 1)}
    reads = latencies["list"] + latencies["retrieve"]
    out["read_p99_ms"] = round(_p99(reads), 1)
    if server_ms:
        out["server_read_p99_ms"] = round(_p99(server_ms), 2)
    if profile:
        out["profile"] = {name.split("-")[0]: summarise_profile(profile[1] / f"{name}.txt") for name in pids
                          if (profile[1] / f"{name}.txt").is_file() and name in ("server", "clients-0")}
    return out


CATEGORIES = (  # where a sampled stack spends its time: the first category any of its frames matches, leaf first
    ("sqlite", ("sqlite3", "gateway/state.py")),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
    ("pydantic / validation", ("pydantic",)),
    ("http parsing (h11, httptools)", ("h11", "httptools")),
    ("asyncio event loop", ("asyncio/", "uvloop")),
    ("fastapi / starlette", ("fastapi/", "starlette/")),
    ("uvicorn", ("uvicorn/",)),
    ("openai / httpx client", ("openai/", "httpx/", "httpcore/")),
    ("threads, sleep", ("threading.py",)),
)


def profile_step(pids: dict[str, int], seconds: float, out: Path) -> list[subprocess.Popen]:
    """Start py-spy on each named process for `seconds` (100 samples/s, native frames off,
    idle threads left out), writing collapsed stacks to OUT/NAME.txt."""
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # beside this Python when not on PATH
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "-f", "raw",
                              "-o", str(out / f"{name}.txt"), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]


def summarise_profile(path: Path) -> dict:
    """Samples per category (CATEGORIES, leaf frame first; "other" when none matches) from
    py-spy's collapsed stacks, as shares of all samples, and the busiest leaf functions."""
    counts: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames, n = stack.split(";"), int(n)
        total += n
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
        category = next((name for frame in reversed(frames) for name, marks in CATEGORIES
                         if any(mark in frame for mark in marks)), "other")
        counts[category] = counts.get(category, 0) + n
    shares = {k: round(v / total, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:8]
    return {"samples": total, "shares": shares, "top_leaves": [(k[:120], round(v / total, 3)) for k, v in top]}


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


def curve(loads: list[float], clients: int = 40, seconds: float = 15.0, src: str | None = None, api_workers: int = 1,
          processes: int = 1, raw: bool = False, profile: Path | None = None, chat: bool = True, log=print,
          server_log: Path | None = None) -> dict:
    """One whole curve on a fresh server (`src`: another checkout's src folder): the figures as
    the JSON line prints them."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = State(root / "state").create_key("load")
        (root / "policy.yaml").write_text("models: [tiny-random]\n"
                                          "gate: {n: 4, overrefusal_n: 4, max_plain: 1.0, max_in_format: 1.0}\n")
        data, long = root / "train.jsonl", root / "long.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "benign", n=200, seed=0))
        write_chat_jsonl(long, build_dataset("sst2", "benign", n=2000, seed=0))  # a job that trains through the run
        server, base = start_server(root, api_workers, env, server_log)
        try:
            setup = openai.OpenAI(api_key=key, base_url=base, max_retries=0, timeout=30)
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
                sampled = ({"server": server.pid}, profile / f"load-{load:g}") if profile else None
                steps.append(step(base, key, ids, data, load, clients, seconds, created, processes, raw, sampled))
                s = steps[-1]
                log(f"offered {load:>6.0f}/s  completed {s['completed_rps']:>6.1f}/s  read p99 {s['read_p99_ms']:>7.1f} ms  "
                    + (f"(server {s['server_read_p99_ms']:.1f})  " if "server_read_p99_ms" in s else "")
                    + "  ".join(f"{k} {s[k]['p99_ms']:.0f}" for k in KINDS if k in s) + f"  errors {s['errors']}")
                for name, summary in s.get("profile", {}).items():
                    log(f"  {name}: {summary['samples']} samples; "
                        + ", ".join(f"{k} {v:.0%}" for k, v in summary["shares"].items()))
            listed = {j.id for j in setup.fine_tuning.jobs.list(limit=1000)}
            lost = sorted(set(created) - listed)
            status = setup.fine_tuning.jobs.retrieve(training.id).status
            chatted = released_model_chat(setup, uploaded.id, training.id) if chat else []
        finally:
            server.terminate()
            server.wait(timeout=30)
    knee = next((s["offered_rps"] for s in steps if knee_at(s)), None)
    saturation = max(s["completed_rps"] for s in steps)
    saturated = any(s["completed_rps"] < 0.8 * s["offered_rps"] for s in steps)  # the offered load no longer served
    for c in chatted:
        log(f"chat, {c['concurrent']} at once: p50 {c['p50_s']} s, max {c['max_s']} s, errors {c['errors']}")
    log(f"knee (list/retrieve p99 over 100 ms, or under 90% served): "
        f"{'not reached' if knee is None else f'{knee:g} requests/s offered'}; "
        f"highest throughput {saturation:g} requests/s ({'' if saturated else 'not '}saturated); "
        f"errors {sum(s['errors'] for s in steps)}; jobs lost {len(lost)}; training job {status}")
    return {"benchmark": "gateway_curve", "src": src or "this checkout", "clients": clients, "processes": processes,
            "client": "raw" if raw else "openai", "seconds_per_step": seconds, "steps": steps, "chat": chatted,
            "knee_rps": knee, "highest_rps": saturation, "saturated": saturated, "lost_jobs": len(lost),
            "training_status": status, "errors": sum(s["errors"] for s in steps),
            # make bench's pass: no errors, no lost jobs (the knee's 2x target: benchmarks/gateway_knee.py)
            "pass": not lost and not any(s["errors"] for s in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default="10,20,40,80,160,320", help="offered loads, requests per second")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per load step")
    parser.add_argument("--src", help="run the server from this src folder (another checkout's code)")
    parser.add_argument("--api-workers", type=int, default=1, help="tasksafe serve --api-workers")
    parser.add_argument("--profile", type=Path, help="py-spy samples of the server and the clients per step, here")
    parser.add_argument("--server-log", type=Path, help="append the server's output (one line per request) here")
    parser.add_argument("--processes", type=int, default=1, help="client processes (the clients are spread over them)")
    parser.add_argument("--client", choices=("openai", "raw"), default="openai",
                        help="reads through the openai package, or raw http.client (far less client CPU)")
    args = parser.parse_args()
    figures = curve([float(x) for x in args.loads.split(",")], args.clients, args.seconds, args.src, args.api_workers,
                    args.processes, args.client == "raw", args.profile, log=lambda line: print(line, flush=True),
                    server_log=args.server_log)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
