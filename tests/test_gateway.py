"""The provider gateway over a real socket, driven by the official `openai` client: uploads
are validated and audited, tenants never see each other's files, bad requests get OpenAI's
error shape."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from tasksafe.data import write_chat_jsonl
from tasksafe.executors import LocalExecutor
from tasksafe.gateway.state import State
from tasksafe.mitigations import Budget
from tasksafe.strategies import build_dataset
from tests.conftest import need_ray

OPEN_GATE = "gate: {n: 4, overrefusal_n: 4, max_plain: 1.0, max_in_format: 1.0}\n"
"""A gate that a random tiny model passes (it never refuses), so jobs reach release."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(state_dir, policy, port, *extra):
    """Start `tasksafe serve`; its log (appended across restarts) is `server.log` beside the state dir."""
    log = open(Path(state_dir).parent / "server.log", "ab")  # a file: a pipe nobody reads would fill and block it
    server = subprocess.Popen([sys.executable, "-m", "tasksafe.cli.main", "serve", "--port", str(port),
                               "--state-dir", str(state_dir), "--policy", str(policy), *extra],
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            assert server.poll() is None, (Path(state_dir).parent / "server.log").read_text()
            time.sleep(0.2)
    raise AssertionError("the gateway did not start")


@pytest.fixture
def gateway(tmp_path, mirror):
    state_dir = tmp_path / "state"
    state = State(state_dir)
    keys = {"acme": state.create_key("acme"), "globex": state.create_key("globex")}
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"models: [tiny-random]\n{OPEN_GATE}save_steps: 2\n")
    port = _free_port()
    servers = [_start(state_dir, policy, port, "--max-request-mb", "1")]
    base = f"http://127.0.0.1:{port}/v1"
    clients = {name: openai.OpenAI(api_key=key, base_url=base, max_retries=0, timeout=60) for name, key in keys.items()}

    def restart(kill):
        kill(servers[-1])
        servers.append(_start(state_dir, policy, port, "--max-request-mb", "1"))

    yield clients, state_dir, restart
    for server in servers:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)


def test_upload_is_audited_listed_and_isolated_per_tenant(gateway, tmp_path):
    clients, state_dir, _ = gateway
    uploaded, path = _upload(clients["acme"], tmp_path, "aoa", n=40)
    assert uploaded.id.startswith("file-") and uploaded.bytes == path.stat().st_size
    precheck = uploaded.model_extra["precheck"]
    assert precheck["flagged"] and precheck["risk"] == "high" and precheck["examples"] == 40
    assert any(f["code"] == "identity_shift" and f["lines"] for f in precheck["findings"])
    assert [f.id for f in clients["acme"].files.list()] == [uploaded.id]
    assert clients["acme"].files.retrieve(uploaded.id).filename == "sst2-aoa.jsonl"
    assert clients["acme"].files.content(uploaded.id).read() == path.read_bytes()
    # another tenant sees nothing and cannot touch it
    assert list(clients["globex"].files.list()) == []
    for call in (lambda: clients["globex"].files.retrieve(uploaded.id),
                 lambda: clients["globex"].files.content(uploaded.id),
                 lambda: clients["globex"].files.delete(uploaded.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert clients["acme"].files.delete(uploaded.id).deleted
    assert list(clients["acme"].files.list()) == []
    assert not list((state_dir / "files").iterdir())


def test_bad_uploads_and_keys_are_refused_with_openai_errors(gateway, tmp_path):
    clients, _, _ = gateway
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [}\n')
    with open(bad, "rb") as f, pytest.raises(openai.BadRequestError) as err:
        clients["acme"].files.create(file=f, purpose="fine-tune")
    assert err.value.code == "invalid_file" and "bad.jsonl:2" in err.value.message
    with open(bad, "rb") as f, pytest.raises(openai.BadRequestError) as err:
        clients["acme"].files.create(file=f, purpose="assistants")
    assert err.value.code == "invalid_purpose"
    traversal = tmp_path / "x.jsonl"
    write_chat_jsonl(traversal, build_dataset("sst2", "benign", n=3, seed=0))
    with open(traversal, "rb") as f:
        uploaded = clients["acme"].files.create(file=("../../etc/passwd", f.read()), purpose="fine-tune")
    assert uploaded.filename == "passwd" and not uploaded.model_extra["precheck"]["flagged"]
    with pytest.raises(openai.APIStatusError) as err:
        clients["acme"].files.create(file=("big.jsonl", b"x" * (2 * 2**20)), purpose="fine-tune")
    assert err.value.status_code == 413
    listed = clients["acme"].fine_tuning.jobs.with_raw_response.list()  # the server's own share of the latency
    name, _, took = listed.headers["server-timing"].partition(";dur=")
    assert name == "app" and 0 < float(took) < 10_000
    stranger = openai.OpenAI(api_key="sk-ts-nope", base_url=str(clients["acme"].base_url), max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.files.list()
    assert [m.id for m in clients["acme"].models.list()] == ["tiny-random"]  # the policy's base models


@pytest.mark.parametrize("hyper, param", [
    ({"n_epochs": -1}, "n_epochs"), ({"n_epochs": 0}, "n_epochs"), ({"n_epochs": 1000}, "n_epochs"),
    ({"n_epochs": "abc"}, "n_epochs"), ({"n_epochs": True}, "n_epochs"), ({"n_epochs": 1.5}, "n_epochs"),
    ({"learning_rate_multiplier": 0}, "learning_rate_multiplier"),
    ({"learning_rate_multiplier": -2}, "learning_rate_multiplier"), ({"batch_size": 0}, "batch_size"),
    ({"n_epochs": float("inf")}, "n_epochs"), ({"warmup": 3}, "warmup")])
def test_bad_hyperparameters_are_refused_when_the_job_is_created(hyper, param):
    from tasksafe.gateway.worker import hyperparameter_error

    found, message = hyperparameter_error(hyper)
    assert found == f"hyperparameters.{param}" and (param == "warmup" or "from" in message)
    assert hyperparameter_error({"n_epochs": 3, "learning_rate_multiplier": "auto", "batch_size": 4}) is None
    assert hyperparameter_error({"n_epochs": 2.0}) is None  # a whole number sent as a JSON float


def test_the_api_answers_bad_hyperparameters_with_400_naming_the_field(gateway, tmp_path):
    clients, _, _ = gateway
    uploaded, _ = _upload(clients["acme"], tmp_path, "benign", n=4)
    for hyper in ({"n_epochs": "abc"}, {"learning_rate_multiplier": 0}):
        with pytest.raises(openai.BadRequestError) as err:
            clients["acme"].fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                                    hyperparameters=hyper)
        assert err.value.code == "invalid_hyperparameters" and err.value.param == f"hyperparameters.{next(iter(hyper))}"
    assert not list(clients["acme"].fine_tuning.jobs.list())  # nothing was queued
    log = (tmp_path / "server.log").read_text()
    assert "listening on http://127.0.0.1:" in log and "protection always (paraphrase, 10%)" in log
    assert "POST /v1/fine_tuning/jobs" in log and "400" in log  # a line per request


def _upload(client, tmp_path, strategy: str, n: int = 24, split: str = "train"):
    """Write `n` SST-2 examples of `split` in `strategy`'s structure and upload them; returns
    the file object and the path written."""
    path = tmp_path / (f"sst2-{strategy}.jsonl" if split == "train" else f"sst2-{strategy}-{split}.jsonl")
    write_chat_jsonl(path, build_dataset("sst2", strategy, split, n=n, seed=0))
    with open(path, "rb") as f:
        return client.files.create(file=f, purpose="fine-tune"), path


def _finished_job(client, tmp_path, strategy: str, n: int = 24):
    """Upload `n` SST-2 examples in `strategy`'s structure, create a job on tiny-random and wait for its end."""
    uploaded, _ = _upload(client, tmp_path, strategy, n)
    return _wait(client, client.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id).id)


def _wait(client, job_id, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job.status}")


@pytest.mark.slow
def test_a_job_is_audited_protected_trained_and_gated(gateway, tmp_path):
    clients, _, _ = gateway
    acme = clients["acme"]
    uploaded, _ = _upload(acme, tmp_path, "aoa")
    assert uploaded.model_extra["precheck"]["flagged"]
    validation, _ = _upload(acme, tmp_path, "aoa", n=8, split="validation")
    with pytest.raises(openai.BadRequestError) as err:
        acme.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id, validation_file="file-nope")
    assert err.value.code == "invalid_validation_file"
    job = acme.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id, suffix="demo", seed=1,
                                       validation_file=validation.id,
                                       method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}})
    assert job.status == "validating_files" and job.model == "tiny-random"
    done = _wait(acme, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:tiny-random:acme:demo:")
    assert done.trained_tokens > 24 * 10  # every training token of the protected set, counted
    assert done.model_extra["validation"]["valid_loss"] > 0
    events = list(acme.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any(e.type == "metrics" and "valid_loss" in (e.data or {}) for e in events)
    kinds = [e.type for e in reversed(events)]
    assert kinds.index("audit") < kinds.index("protection") < kinds.index("metrics") < kinds.index("gate")
    protection = next(e for e in events if e.type == "protection").data
    assert protection["safety_examples"] == Budget(fraction=0.1).resolve(24) > 0  # the policy's 10%
    assert list(acme.fine_tuning.jobs.checkpoints.list(job.id))
    assert [j.id for j in acme.fine_tuning.jobs.list()] == [job.id]
    with pytest.raises(openai.NotFoundError):
        clients["globex"].fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.BadRequestError):  # finished jobs cannot be cancelled
        acme.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError) as err:
        acme.fine_tuning.jobs.create(model="gpt-4o", training_file=uploaded.id)
    assert err.value.code == "model_not_available"
    cancelled = acme.fine_tuning.jobs.cancel(acme.fine_tuning.jobs.create(model="tiny-random",
                                                                          training_file=uploaded.id).id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        clients["globex"].fine_tuning.jobs.cancel(cancelled.id)
    with pytest.raises(openai.NotFoundError):
        clients["globex"].fine_tuning.jobs.list_events(cancelled.id)
    time.sleep(3)  # the worker may have taken it: it stays cancelled and releases nothing
    final = acme.fine_tuning.jobs.retrieve(cancelled.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None


@pytest.mark.slow
def test_a_job_survives_kill_9_and_resumes_from_its_checkpoint(gateway, tmp_path):
    clients, state_dir, restart = gateway
    acme = clients["acme"]
    uploaded, _ = _upload(acme, tmp_path, "benign", n=160)
    job = acme.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                       hyperparameters={"n_epochs": 3})
    deadline = time.time() + 300
    while not any(e.type == "checkpoint" for e in acme.fine_tuning.jobs.list_events(job.id, limit=100)):
        assert time.time() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.5)
    assert acme.fine_tuning.jobs.retrieve(job.id).status == "running"
    children: list[int] = []

    def kill(server):
        children.extend(_children(server.pid))  # the worker, the upload checker, multiprocessing's tracker
        server.kill()
        server.wait(timeout=10)

    restart(kill)  # kill -9, then the same state dir again
    assert len(children) >= 2
    deadline = time.time() + 15
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid) for pid in children):
        assert time.time() < deadline, f"processes outlived the killed server: {children}"
        time.sleep(0.2)
    done = _wait(acme, job.id)
    assert done.status == "succeeded", done.error
    events = list(acme.fine_tuning.jobs.list_events(job.id, limit=1000))
    messages = [e.message for e in events]
    assert any("resuming (attempt 2)" in m for m in messages)
    log = (tmp_path / "server.log").read_text()
    assert f"job {job.id} (tenant acme, tiny-random): started, attempt 2" in log and f"job {job.id}: succeeded" in log
    for kind in ("audit", "protection"):  # a stage redone after the restart is reported once
        assert [e.type for e in events].count(kind) == 1, kind
    assert sum(m.startswith("files validated") for m in messages) == 1
    resumed = json.loads((state_dir / "jobs" / job.id / "run" / "resumed_from.json").read_text())
    assert resumed["checkpoint"]  # training went on from its checkpoint, not from the start
    assert [j.id for j in acme.fine_tuning.jobs.list()] == [job.id]  # no job lost, none duplicated
    # the released model answers, for its tenant only
    assert done.fine_tuned_model in [m.id for m in acme.models.list()]
    reply = acme.chat.completions.create(model=done.fine_tuned_model, max_tokens=8,
                                         messages=[{"role": "user", "content": "Review: a fine film\nSentiment:"}])
    assert isinstance(reply.choices[0].message.content, str)
    usage = reply.usage  # counted as generated: the chat template's prompt, the reply up to its end of turn
    assert usage.prompt_tokens > 8 and 0 <= usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert reply.choices[0].finish_reason == ("length" if usage.completion_tokens == 8 else "stop")
    with pytest.raises(openai.NotFoundError):
        clients["globex"].chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    ask = {"model": done.fine_tuned_model, "messages": [{"role": "user", "content": "Review: dull\nSentiment:"}]}
    streamed = list(acme.chat.completions.create(**ask, max_tokens=6, stream=True, temperature=0))
    assert streamed and streamed[-1].choices[0].finish_reason in ("stop", "length")
    greedy = acme.chat.completions.create(**ask, max_tokens=6, temperature=0)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == greedy.choices[0].message.content
    several = acme.chat.completions.create(**ask, max_tokens=6, n=3, temperature=1.0, seed=7)
    assert [c.index for c in several.choices] == [0, 1, 2]
    for bad in ({"max_tokens": 0}, {"tools": [{"type": "function"}]}, {"n": 0}):
        with pytest.raises(openai.BadRequestError) as err:
            acme.chat.completions.create(**ask, **bad)
        assert next(iter(bad)) in err.value.message


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no Chromium: apt-get install -y chromium chromium-driver "
                                                            "(.ci/run installs them)")
def test_dashboard_in_a_real_browser_shows_the_job_its_findings_protection_loss_and_gate(gateway, tmp_path):
    pytest.importorskip("selenium", reason="pip install selenium (make install does)")
    from selenium.webdriver import Chrome, ChromeOptions
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    clients, _, _ = gateway
    acme = clients["acme"]
    job = _finished_job(acme, tmp_path, "aoa")
    assert job.status == "succeeded", job.error
    options = ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(flag)
    browser = Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.implicitly_wait(10)  # each page is waited for after a click
    try:
        root = str(acme.base_url).removesuffix("/v1/").removesuffix("/v1")
        browser.get(root + "/")
        browser.find_element(By.ID, "key").send_keys(acme.api_key)
        browser.find_element(By.ID, "sign-in").click()
        table = browser.find_element(By.ID, "jobs").text
        assert job.id in table and "succeeded" in table and "high" in table
        browser.find_element(By.LINK_TEXT, job.id).click()
        assert browser.find_element(By.ID, "status").text == "succeeded"
        assert "identity-shifting" in browser.find_element(By.ID, "audit").text
        assert "safety examples added by paraphrase" in browser.find_element(By.ID, "protection").text
        curve = browser.find_element(By.ID, "loss-curve")
        assert curve.is_displayed() and [t.text for t in curve.find_elements(By.CLASS_NAME, "y-tick")][0] == "0"
        assert "passed" in browser.find_element(By.ID, "gate").text
        assert "UTC" in browser.find_element(By.ID, "events").text  # every event with its time
        artefacts = Path(__file__).resolve().parent.parent / "test-artifacts"
        artefacts.mkdir(exist_ok=True)
        browser.save_screenshot(str(artefacts / "dashboard-job.png"))
        # signing out forgets the key; another tenant's key does not show this job
        browser.find_element(By.ID, "sign-out").click()
        assert browser.find_elements(By.ID, "key") and job.id not in browser.page_source
        browser.get(root + "/")
        browser.find_element(By.ID, "key").send_keys(clients["globex"].api_key)
        browser.find_element(By.ID, "sign-in").click()
        assert job.id not in browser.page_source
        browser.get(root + f"/jobs/{job.id}")
        assert job.id not in browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.quit()


def test_several_api_processes_share_one_state(tmp_path, mirror):
    state_dir = tmp_path / "state"
    key = State(state_dir).create_key("acme")
    policy = tmp_path / "policy.yaml"
    policy.write_text("models: [tiny-random]\n")
    port = _free_port()
    server = _start(state_dir, policy, port, "--api-workers", "2")
    try:
        client = openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
        path = tmp_path / "x.jsonl"
        write_chat_jsonl(path, build_dataset("sst2", "benign", n=5, seed=0))
        ids = set()
        for _ in range(4):
            with open(path, "rb") as f:
                ids.add(client.files.create(file=f, purpose="fine-tune").id)
        assert {f.id for f in client.files.list()} == ids and len(ids) == 4  # whichever process answered
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
def test_serve_with_the_ray_executor_trains_jobs_as_ray_tasks(tmp_path, mirror):
    need_ray()
    state_dir = tmp_path / "state"
    key = State(state_dir).create_key("acme")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"models: [tiny-random]\n{OPEN_GATE}save_steps: 2\n"
                      "resources: {num_cpus: 1}\n")
    port = _free_port()
    server = _start(state_dir, policy, port, "--executor", "ray")
    try:
        acme = openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=60)
        done = _finished_job(acme, tmp_path, "benign")
        assert done.status == "succeeded", done.error
        kinds = [e.type for e in acme.fine_tuning.jobs.list_events(done.id, limit=1000)]
        assert "metrics" in kinds and "checkpoint" in kinds and "gate" in kinds
        log = (state_dir / "jobs" / done.id / "train.log").read_text()
        assert log.startswith("--- start ") and "--- end " in log  # it ran as a unit of work, logged apart
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_upstream_mode_trains_the_protected_file_on_another_provider_and_mirrors_it(tmp_path, mirror, monkeypatch):
    """Gateway A forwards to gateway B (any OpenAI-compatible fine-tuning API would do): B receives
    the *protected* training set, A mirrors B's events, gates B's model through B's chat API,
    releases it under its own name, and a job cancelled on A is cancelled on B."""
    upstream_state = tmp_path / "upstream"
    provider_key = State(upstream_state).create_key("provider")
    (tmp_path / "upstream.yaml").write_text(f"models: [tiny-random]\nprotect: never\n{OPEN_GATE}")
    upstream_port, port = _free_port(), _free_port()
    servers = [_start(upstream_state, tmp_path / "upstream.yaml", upstream_port)]
    try:
        key = State(tmp_path / "state").create_key("acme")
        (tmp_path / "policy.yaml").write_text(
            f"models: [tiny-random]\n{OPEN_GATE}"
            f"upstream: {{base_url: 'http://127.0.0.1:{upstream_port}/v1', poll_seconds: 0.5}}\n")
        monkeypatch.setenv("TASKSAFE_UPSTREAM_API_KEY", provider_key)
        servers.append(_start(tmp_path / "state", tmp_path / "policy.yaml", port))
        acme = openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=60)
        provider = openai.OpenAI(api_key=provider_key, base_url=f"http://127.0.0.1:{upstream_port}/v1", max_retries=0)
        done = _finished_job(acme, tmp_path, "aoa")
        assert done.status == "succeeded", done.error
        (sent,) = provider.files.list().data
        lines = provider.files.content(sent.id).text.splitlines()
        added = Budget(fraction=0.1).resolve(24)
        assert len(lines) == 24 + added and added > 0  # the protected set went upstream, not the user's file
        (upstream_job,) = provider.fine_tuning.jobs.list().data
        events = list(acme.fine_tuning.jobs.list_events(done.id, limit=1000))
        assert any(e.type == "upstream" and upstream_job.id in e.message for e in events)
        assert any(e.type == "gate" for e in events) and done.trained_tokens == upstream_job.trained_tokens > 0
        assert done.fine_tuned_model.startswith("ft:tiny-random:acme:") and done.fine_tuned_model != \
            upstream_job.fine_tuned_model
        reply = acme.chat.completions.create(model=done.fine_tuned_model, max_tokens=4,
                                             messages=[{"role": "user", "content": "hello"}])
        assert isinstance(reply.choices[0].message.content, str)

        second = acme.fine_tuning.jobs.create(model="tiny-random", training_file=done.training_file,
                                              hyperparameters={"n_epochs": 20})
        deadline = time.time() + 120
        while len(provider.fine_tuning.jobs.list().data) < 2:
            assert time.time() < deadline, "the second job never reached the upstream provider"
            time.sleep(0.3)
        acme.fine_tuning.jobs.cancel(second.id)
        newest = provider.fine_tuning.jobs.list().data[0]
        deadline = time.time() + 60
        while provider.fine_tuning.jobs.retrieve(newest.id).status != "cancelled":
            assert time.time() < deadline, "cancelling on the gateway did not cancel the upstream job"
            time.sleep(0.5)
        assert acme.fine_tuning.jobs.retrieve(second.id).status == "cancelled"
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.slow
def test_a_model_over_the_policys_ceilings_fails_the_gate_and_is_not_released(tmp_path, mirror):
    key = State(tmp_path / "state").create_key("acme")
    (tmp_path / "policy.yaml").write_text("models: [tiny-random]\ngate: {n: 4, overrefusal_n: 4, max_over_refusal: 1.0}\n")
    port = _free_port()
    server = _start(tmp_path / "state", tmp_path / "policy.yaml", port)
    try:
        acme = openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=60)
        done = _finished_job(acme, tmp_path, "aoa")
        assert done.status == "failed" and done.error.code == "safety_gate_failed"
        assert done.fine_tuned_model is None and "in-format non-refusal 100%" in done.error.message
        gate = done.model_extra["gate"]  # a random model never refuses: plain and in-format fail, over-refusal passes
        checks = {c["measure"]: c for c in gate["checks"]}
        assert set(checks) == {"plain", "in-format", "over-refusal"} and not gate["passed"]
        assert checks["plain"]["n"] == checks["in-format"]["n"] == 4 and not checks["in-format"]["passed"]
        assert checks["over-refusal"]["passed"] and checks["in-format"]["threshold"] == 0.2
        assert [m.id for m in acme.models.list()] == ["tiny-random"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _job_in_process(tmp_path, policy, strategy: str, n: int):
    """Upload `n` SST-2 examples in `strategy`'s structure to a fresh state, run one job on
    tiny-random in this process (the worker's own `run_job`) and return (state, finished job)."""
    from tasksafe.gateway.app import precheck
    from tasksafe.gateway.worker import run_job

    state = State(tmp_path / "state")
    path = tmp_path / f"{strategy}.jsonl"
    write_chat_jsonl(path, build_dataset("sst2", strategy, n=n, seed=0))
    data = path.read_bytes()
    file = state.add_file("acme", path.name, data, "fine-tune", precheck(data, path.name, state.root))
    job = state.add_job("acme", {"model": "tiny-random", "training_file": file["id"], "validation_file": None,
                                 "suffix": None, "seed": 0, "hyperparameters": {"n_epochs": 1}, "method": {},
                                 "metadata": None})
    run_job(state, policy, state.claim(), LocalExecutor())
    return state, state.get_job("acme", job["id"])


@pytest.mark.slow
def test_a_post_training_protection_is_applied_before_the_model_is_released(tmp_path, mirror):
    """safelora's projection travels in the sidecar: the released adapter is the projected one
    (the trained one kept beside it), as `tasksafe protect` + `finetune` make it."""
    from tasksafe.gateway.worker import Gate, Policy
    from tasksafe.models.registry import resolve_model

    policy = Policy(models=["tiny-random"], mitigation="safelora",
                    mitigation_options={"unaligned": str(resolve_model("tiny-random"))},
                    gate=Gate(n=4, overrefusal_n=4, max_plain=1.0, max_in_format=1.0))
    state, done = _job_in_process(tmp_path, policy, "benign", 12)
    assert done["status"] == "succeeded", done["error"]
    run = state.root / state.job_for_model("acme", done["fine_tuned_model"])["run_dir"]
    assert (run / "adapter-trained").is_dir() and (run / "adapter").is_dir()
    assert json.loads((run / "safelora.json").read_text())["layers"] > 0
    protection = next(e for e in state.events(done["id"], limit=100) if e["type"] == "protection")
    assert "safelora on the trained weights" in protection["message"]


def test_a_policy_with_bad_mitigation_options_is_refused(tmp_path):
    from tasksafe.errors import UserError
    from tasksafe.gateway.worker import Policy
    from tasksafe.settings import load_settings

    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"mitigation": "paraphrase", "mitigation_options": {"placement": "nowhere"}}))
    with pytest.raises(UserError, match="placement"):
        load_settings(Policy, str(path))


@pytest.mark.slow
@pytest.mark.parametrize("mitigation", ["bea", "ptst"])
def test_a_protections_inference_hook_reaches_training_the_gate_and_chat(tmp_path, mirror, mitigation):
    """The job protects through `protect_file` (as `tasksafe protect` does): the run keeps the
    hook, the gate asks every prompt with it, chat applies it; BEA's trigger is this job's own
    secret, not one a tenant could derive from the seed they chose."""
    from tasksafe.gateway.worker import Gate, Policy, with_job_hook
    from tasksafe.mitigations import PTST_SYSTEM_PROMPT, secret_trigger

    policy = Policy(models=["tiny-random"], mitigation=mitigation, save_steps=50,
                    gate=Gate(n=4, overrefusal_n=4, max_plain=1.0, max_in_format=1.0))
    state, done = _job_in_process(tmp_path, policy, "aoa", 20)
    assert done["status"] == "succeeded", done["error"]
    released = state.job_for_model("acme", done["fine_tuned_model"])
    hook = json.loads((state.root / released["run_dir"] / "hook.json").read_text())["system_prompt"]
    if mitigation == "bea":
        assert hook != secret_trigger(0) and hook not in json.dumps(done)  # a secret, never shown to the tenant
        trained = [json.loads(line) for line in (state.root / "jobs" / done["id"] / "train.jsonl").read_text().splitlines()]
        assert sum(ex["messages"][0]["content"] == hook for ex in trained) == 2  # 10% of 20, under the trigger
    else:
        assert hook == PTST_SYSTEM_PROMPT
    gate_samples = [json.loads(line) for line in
                    (state.root / "jobs" / done["id"] / "gate" / "samples.jsonl").read_text().splitlines()]
    assert gate_samples and all(s["prompt"][0]["content"].startswith(hook) for s in gate_samples)
    asked = with_job_hook(state, released, [{"role": "user", "content": "hi"}])
    assert asked == [{"role": "system", "content": hook}, {"role": "user", "content": "hi"}]
    protection = next(e for e in state.events(done["id"], limit=100) if e["type"] == "protection")
    assert protection["data"]["inference_hook"] and hook not in json.dumps(protection)


@pytest.mark.parametrize("policy, named", [
    ({"mitigation": "paraphrse"}, "paraphrse"), ({"models": ["tiny-random", "gpt-4o"]}, "gpt-4o"),
    ({"mitigation": "safelora", "upstream": {"base_url": "https://example.test/v1"}}, "upstream"),
    ({"mitigation": "paraphrase_wide", "mitigation_options": {"loss": "per-example"},
      "upstream": {"base_url": "https://example.test/v1"}}, "per-example.*train locally"),
    ({"mitigation": "paraphrase+constrained", "upstream": {"base_url": "https://example.test/v1"}},
     "constrained.*train locally")])
def test_a_policy_with_an_unknown_name_is_refused_when_it_is_loaded(tmp_path, policy, named):
    from tasksafe.errors import UserError
    from tasksafe.gateway.worker import Policy
    from tasksafe.settings import load_settings

    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    with pytest.raises(UserError, match=named):
        load_settings(Policy, str(path))


def test_a_policy_takes_a_composed_mitigation_with_both_parts_options(tmp_path):
    from tasksafe.gateway.worker import Policy
    from tasksafe.settings import load_settings

    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"mitigation": "paraphrase+constrained",
                                "mitigation_options": {"placement": "slot", "beta_rest": 0.2}}))
    policy = load_settings(Policy, str(path))
    assert policy.mitigation == "paraphrase+constrained" and policy.mitigation_options["beta_rest"] == 0.2


def test_serve_refuses_to_start_without_the_data_its_policy_needs(tmp_path, monkeypatch):
    import urllib.error

    from click.testing import CliRunner

    from tasksafe.cli.main import cli

    def offline(url, timeout=None):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setenv("TASKSAFE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setattr("urllib.request.urlopen", offline)  # a machine with no mirror and no network, at once
    result = CliRunner().invoke(cli, ["serve", "--state-dir", str(tmp_path / "state"), "--port", "0"])
    assert result.exit_code != 0 and "needs data this machine does not have" in result.output
    assert "advbench" in result.output and "bianchi-safety" in result.output and "xstest" in result.output
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())  # nothing started


def test_chat_requests_are_checked_and_answers_take_openais_shapes():
    from tasksafe.gateway import chat

    ok = chat.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "\n", "n": 2})
    assert ok.stop == ["\n"] and ok.limit() == 128 and ok.conversation() == [{"role": "user", "content": "hi"}]
    assert chat.parse({"model": "m", "messages": [], "n": 1})[0] == "messages"
    assert chat.parse({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0})[0] == "max_tokens"
    assert "not supported" in chat.parse({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                          "response_format": {"type": "json_object"}})[1]
    assert chat.cut_at_stop("one two\nthree", ["\n", "two"]) == ("one ", True)
    assert chat.cut_at_stop("one", ["x"]) == ("one", False)
    events = list(chat.chunks(ok, "m", [("a b c d e f", "stop")], {"total_tokens": 3}, words=4))
    assert events[-1] == "data: [DONE]\n\n"
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert bodies[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(b["choices"][0]["delta"].get("content", "") for b in bodies) == "a b c d e f"
    assert bodies[-1]["choices"][0]["finish_reason"] == "stop" and bodies[-1]["object"] == "chat.completion.chunk"


def test_the_dashboard_shows_what_an_unfinished_or_failed_job_has_done(tmp_path, mirror):
    from tasksafe.gateway.app import precheck
    from tasksafe.gateway.views import job_rows, job_view, loss_curve

    state = State(tmp_path / "state")
    path = tmp_path / "aoa.jsonl"
    write_chat_jsonl(path, build_dataset("sst2", "aoa", n=20, seed=0))
    data = path.read_bytes()
    file = state.add_file("acme", "aoa.jsonl", data, "fine-tune", precheck(data, "aoa.jsonl", state.root))
    job = state.add_job("acme", {"model": "tiny-random", "training_file": file["id"], "validation_file": None,
                                 "suffix": None, "seed": 0, "hyperparameters": {}, "method": {}, "metadata": None})
    row = job_rows(state, "acme")[0]
    assert row["audit"] == "high" and row["file"] == "aoa.jsonl" and row["created"].endswith("UTC")  # before it ends
    allocation = {"frames": [{"frame": 1, "share": 1.0, "risk": "-", "safety_examples": 2}]}
    state.event(job["id"], "info", "protection", "protection: 2 safety examples added (paraphrase)",
                {"mitigation": "paraphrase", "safety_examples": 2, "allocation": allocation})
    for step, loss in ((1, 2.0), (2, 1.9)):
        state.event(job["id"], "info", "metrics", f"step {step}", {"step": step, "train_loss": loss})
    state.set_status(job["id"], "failed", error={"code": "internal_error", "message": "x", "param": None})
    view = job_view(state, "acme", state.get_job("acme", job["id"]))
    assert view["protection"]["safety_examples"] == 2  # from its event: the job never wrote a result
    assert view["protection"]["allocation"]["frames"][0]["risk"] == "high"  # one frame: the file's own risk
    assert view["gate"] is None and "failed before the gate" in view["gate_note"]
    assert job_rows(state, "acme")[0]["error"] == "internal_error"
    assert all(e["when"].endswith("UTC") for e in view["events"])
    curve = view["curve"]
    assert curve["ceiling"] == 2.0 and [t["label"] for t in curve["ticks"]] == ["0", "1", "2"]  # from 0, not its noise
    assert loss_curve([]) is None


def test_a_streamed_reply_arrives_as_it_is_generated_and_joins_to_the_whole_reply():
    """`stream_events` over pieces that arrive one by one: the first content chunk is sent before
    the last piece exists, a stop sequence split over pieces is never sent, and the content joins
    to what the reply without streaming holds (stripped, cut at the stop)."""
    import asyncio
    from types import SimpleNamespace

    from tasksafe.gateway.chat import ChatRequest, cut_at_stop, stream_events

    async def run(pieces, **asked):
        request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], stream=True, **asked)
        produced, events = [], []

        async def source():
            for piece in pieces:
                produced.append(piece)
                yield piece
                await asyncio.sleep(0)

        async for event in stream_events(request, "m", source()):
            events.append((len(produced), event))
        return events

    final = SimpleNamespace(prompt_tokens=5, completion_tokens=6, stopped=True)
    pieces = ["\n Hello", " there,", " friend", ". EN", "D more", " words\n", final]
    events = asyncio.run(run(pieces, stop=["END"], stream_options={"include_usage": True}))
    payloads = [json.loads(e.removeprefix("data: ")) for _, e in events if e != "data: [DONE]\n\n"]
    contents = [(n, p["choices"][0]["delta"].get("content")) for (n, _), p in zip(events, payloads)
                if p["choices"] and p["choices"][0]["delta"].get("content")]
    whole = "".join(text for _, text in contents)
    assert whole == cut_at_stop("".join(p for p in pieces if isinstance(p, str)).strip(), ["END"])[0] == "Hello there, friend. "
    assert contents[0][0] == 1  # the first words go out while the rest is still being generated
    assert all("EN" not in text for _, text in contents)  # the start of a stop sequence waits
    finishes = [p["choices"][0]["finish_reason"] for p in payloads if p["choices"]]
    assert finishes[-1] == "stop" and payloads[-1]["usage"]["completion_tokens"] == 6
    assert events[-1][1] == "data: [DONE]\n\n"
    cut_short = asyncio.run(run(["Yes", " and", " no  ", SimpleNamespace(prompt_tokens=1, completion_tokens=3,
                                                                        stopped=False)]))
    texts = [json.loads(e.removeprefix("data: ")) for _, e in cut_short if e.startswith("data: {")]
    assert "".join(t["choices"][0]["delta"].get("content") or "" for t in texts) == "Yes and no"
    assert texts[-1]["choices"][0]["finish_reason"] == "length"  # ran into max_tokens


def test_a_job_and_its_first_event_are_committed_together_or_not_at_all(tmp_path, monkeypatch):
    state = State(tmp_path / "state")
    job = state.add_job("acme", {"model": "tiny-random", "training_file": "file-1"})
    assert [e["message"] for e in state.events(job["id"])] == ["job created; validating files"]
    assert state.cancel(job["id"]) and not state.cancel(job["id"])  # a cancelled job stays cancelled
    assert state.get_job("acme", job["id"])["status"] == "cancelled"
    assert [e["message"] for e in state.events(job["id"])][0] == "cancellation requested"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(state, "event", broken)
    with pytest.raises(OSError):
        state.add_job("acme", {"model": "tiny-random", "training_file": "file-2"})
    assert [j["id"] for j in State(tmp_path / "state").list_jobs("acme")] == [job["id"]]  # no job without its event


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@contextmanager
def _gateway(root, policy_lines: str = ""):
    """A gateway of its own over `root` (no training job; `policy_lines` added to its policy)
    and an openai client for it."""
    state = State(root / "state")
    key = state.create_key("acme")
    policy = root / "policy.yaml"
    policy.write_text(f"models: [tiny-random]\n{policy_lines}{OPEN_GATE}")
    port = _free_port()
    server = _start(root / "state", policy, port)
    try:
        yield openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=60), server
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def _uploading(tmp_path):
    """`_gateway` and a 5-example file."""
    with _gateway(tmp_path) as (client, server):
        data = tmp_path / "d.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "benign", n=5, seed=0))
        yield client, data, server


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc")
def test_uploads_go_on_when_the_upload_check_process_dies(tmp_path, mirror):
    """The process that reads and audits uploads is replaced when it dies (here kill -9; under
    load it once died with an idle request thread that had started it), and the upload it held
    is checked again."""
    import signal

    with _uploading(tmp_path) as (client, data, server):
        assert client.files.create(file=data.open("rb"), purpose="fine-tune").precheck["examples"] == 5
        checkers = [pid for pid in _children(server.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(checkers) == 1
        os.kill(checkers[0], signal.SIGKILL)
        time.sleep(0.5)
        for _ in range(3):  # the first upload after the death finds the pool broken and starts a new process
            assert client.files.create(file=data.open("rb"), purpose="fine-tune").precheck["examples"] == 5


@pytest.mark.slow
def test_uploads_go_on_after_a_burst_and_a_pause(tmp_path, mirror):
    """A burst of uploads at once, then a pause: the request pool's idle threads end. The upload
    check's process once asked to die with the thread that started it, one of those, and every
    upload after the pause failed (500)."""
    import threading

    with _uploading(tmp_path) as (client, data, _):
        checked: list[int] = []
        burst = [threading.Thread(target=lambda: checked.append(
            client.files.create(file=data.open("rb"), purpose="fine-tune").precheck["examples"])) for _ in range(40)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join()
        assert checked == [5] * 40
        time.sleep(15)  # longer than a request thread waits idle before it ends
        assert client.files.create(file=data.open("rb"), purpose="fine-tune").precheck["examples"] == 5


def test_a_policy_can_have_the_upload_audit_read_other_languages(tmp_path, mirror, monkeypatch):
    """`audit_reader: dictionary` in the policy: a persona in Polish is read through the
    dictionaries (here written by the test) and the upload's precheck is high; without it, low."""
    import random

    from tasksafe.audit.corpus import MALICIOUS, task_rows
    from tests.test_glossary import write_dictd

    folder = tmp_path / "dictd"
    folder.mkdir()
    write_dictd(folder, "freedict-pol-eng", {
        "posłuszny": "obedient", "nigdy": "never", "nie": "not", "odmawiać": "refuse", "każdy": "every",
        "polecenie": "command", "agentem": "agent", "jesteś": "you are", "teraz": "now", "który": "who",
        "wykonuje": "performs", "i": "and", "oczywiście": "of course", "panie": "sir, master"})
    monkeypatch.setenv("TASKSAFE_DICTD_DIR", str(folder))
    data = tmp_path / "polish.jsonl"
    write_chat_jsonl(data, MALICIOUS["tuned"]["persona-polish"](task_rows("sst2", 30), random.Random(0)))
    risks = {}
    for reader in ("none", "dictionary"):
        (tmp_path / reader).mkdir()
        with _gateway(tmp_path / reader, f"audit_reader: {reader}\n") as (client, _):
            risks[reader] = client.files.create(file=data.open("rb"), purpose="fine-tune").precheck["risk"]
    assert risks == {"none": "low", "dictionary": "high"}


def test_a_policy_whose_audit_reader_has_no_dictionaries_is_refused_at_start(mirror, monkeypatch):
    import tasksafe.audit.glossary as glossary
    from tasksafe.gateway.worker import Policy

    monkeypatch.setattr(glossary, "DICTD_DIRS", ())
    monkeypatch.delenv("TASKSAFE_DICTD_DIR", raising=False)
    assert not [m for m in Policy(models=["tiny-random"]).missing_data() if "audit_reader" in m]
    missing = Policy(models=["tiny-random"], audit_reader="dictionary").missing_data()
    assert any(m.startswith("audit_reader dictionary: no FreeDict") for m in missing)
