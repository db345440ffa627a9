"""The provider-API backend against a small OpenAI-compatible fine-tuning server started
here: the real `openai` client over a real socket."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasksafe.data.chat import ChatExample, write_chat_jsonl
from tasksafe.errors import UserError
from tasksafe.train.provider import run_provider_job


class FineTuningAPI(BaseHTTPRequestHandler):
    """Files and fine-tuning jobs. `server.script` sets the job's fate and transient errors."""

    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _job(self):
        state = self.server.state
        return {"id": "ftjob-1", "object": "fine_tuning.job", "model": state["model"], "created_at": 1,
                "status": state["status"], "training_file": "file-1", "fine_tuned_model": state.get("result"),
                "organization_id": "org", "result_files": [], "seed": 0, "hyperparameters": {"n_epochs": 1},
                "error": state.get("error"), "finished_at": None, "trained_tokens": None, "validation_file": None}

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        state = self.server.state
        if self.path == "/v1/files":
            state["uploaded"] = body
            self._send(200, {"id": "file-1", "object": "file", "bytes": length, "created_at": 1,
                             "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
        elif self.path == "/v1/fine_tuning/jobs":
            state["model"] = json.loads(body)["model"]
            state["status"] = "queued"
            self._send(200, self._job())
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_GET(self):
        state = self.server.state
        if self.path.startswith("/v1/fine_tuning/jobs/ftjob-1/events"):
            events = [{"id": f"ev-{i}", "object": "fine_tuning.job.event", "created_at": i, "level": "info",
                       "message": message, "type": "message"} for i, message in enumerate(state["events"])]
            self._send(200, {"object": "list", "data": events, "has_more": False})
        elif self.path == "/v1/fine_tuning/jobs/ftjob-1":
            state["polls"] += 1
            if state["polls"] in state["fail_polls"]:
                self._send(500, {"error": {"message": "transient"}})
                return
            steps = state["script"]
            state["status"] = steps[min(state["polls"], len(steps)) - 1]
            state["events"].append(f"status {state['status']}")
            if state["status"] == "succeeded":
                state["result"] = "ft:tiny:tasksafe:1"
            if state["status"] == "failed":
                state["error"] = {"code": "invalid_training_file", "message": "bad data on line 3", "param": None}
            self._send(200, self._job())
        else:
            self._send(404, {"error": {"message": "not found"}})


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FineTuningAPI)
    server.state = {"polls": 0, "events": [], "fail_polls": set(), "script": ["running", "succeeded"]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def training_file(tmp_path):
    path = tmp_path / "train.jsonl"
    write_chat_jsonl(path, [ChatExample.from_turns("Q", "A", metadata={"task": "x"})])
    return path


def run(api, tmp_path, **kwargs):
    lines = []
    record = run_provider_job(f"http://127.0.0.1:{api.server_port}/v1", "tiny-base", training_file(tmp_path),
                              tmp_path / "run", api_key="test", echo=lines.append, sleep=lambda s: None, **kwargs)
    return record, lines


def test_a_job_runs_to_its_fine_tuned_model(api, tmp_path):
    record, lines = run(api, tmp_path)
    assert record["fine_tuned_model"] == "ft:tiny:tasksafe:1" and record["status"] == "succeeded"
    assert json.loads((tmp_path / "run" / "provider_job.json").read_text())["job_id"] == "ftjob-1"
    assert b'"metadata"' not in api.state["uploaded"] and b'"messages"' in api.state["uploaded"]
    assert any("status running" in line for line in lines)


def test_a_transient_500_is_retried(api, tmp_path):
    api.state["fail_polls"] = {1}
    record, _ = run(api, tmp_path)
    # poll 1 answered 500; the client retried it (poll 2) instead of failing the run
    assert record["fine_tuned_model"] == "ft:tiny:tasksafe:1" and api.state["polls"] == 2


def test_a_failed_job_is_a_clear_error_and_is_recorded(api, tmp_path):
    api.state["script"] = ["running", "failed"]
    with pytest.raises(UserError, match="ftjob-1 failed: bad data on line 3"):
        run(api, tmp_path)
    assert json.loads((tmp_path / "run" / "provider_job.json").read_text())["status"] == "failed"


def test_a_set_whose_protection_needs_a_training_setting_is_refused_before_any_upload(api, tmp_path):
    import hashlib

    from tasksafe.data.sidecar import sidecar_path

    data = training_file(tmp_path)
    sidecar_path(data).write_text(json.dumps({"data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                                              "training": {"loss": "per-example"}}))
    with pytest.raises(UserError, match="per-example.*train locally"):
        run_provider_job(f"http://127.0.0.1:{api.server_port}/v1", "tiny-base", data, tmp_path / "run",
                         api_key="test", echo=lambda line: None, sleep=lambda s: None)
    assert "uploaded" not in api.state and not (tmp_path / "run").exists()  # nothing sent, nothing written


class ChatAPI(BaseHTTPRequestHandler):
    """Chat completions that echo the last user message; the first request gets a 500."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.requests += 1
        if self.server.requests == 1:
            payload, status = {"error": {"message": "transient"}}, 500
        else:
            text = f"echo: {body['messages'][-1]['content']} ({body['max_tokens']})"
            payload, status = {"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}]}, 200
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_the_openai_compatible_generation_backend_keeps_order_and_retries():
    from tasksafe.generate import GenerationParams
    from tasksafe.generate.openai_compatible import OpenAICompatibleBackend

    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatAPI)
    server.requests = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAICompatibleBackend("m", base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k",
                                          concurrency=3)
        conversations = [[{"role": "user", "content": f"q{i}"}] for i in range(7)]
        texts = backend.generate(conversations, GenerationParams(max_new_tokens=9))
        assert texts == [f"echo: q{i} (9)" for i in range(7)]
        assert server.requests == 8  # one transient 500, retried
    finally:
        server.shutdown()
