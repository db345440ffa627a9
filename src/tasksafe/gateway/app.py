"""The gateway's HTTP API, under `/v1` as OpenAI names it, so the official `openai` client
works against it unchanged. Errors are OpenAI's shape: `{"error": {"message", "type",
"param", "code"}}`."""

from __future__ import annotations

import asyncio
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tasksafe.gateway.state import State
from tasksafe.gateway.worker import hyperparameter_error, with_job_hook

MAX_REQUEST_BYTES = 64 * 2**20
"""Requests larger than this are refused before they are read (413)."""


class SizeLimitAndTiming:
    """ASGI middleware: a request whose Content-Length is over `max_request_bytes` is answered
    413 before its body is read, and every response carries `Server-Timing: app;dur=MS`, the
    milliseconds from the request's arrival in the app to its response headers (the server's
    own share of a client's latency). Plain ASGI rather than `@app.middleware("http")`, whose
    per-request task group and streams cost more than most routes here."""

    def __init__(self, app, max_request_bytes: int):
        self.app, self.max_request_bytes = app, max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        size = dict(scope["headers"]).get(b"content-length", b"")
        if size.isdigit() and int(size) > self.max_request_bytes:
            response = JSONResponse({"error": {"message": f"request larger than {self.max_request_bytes} bytes",
                                               "type": "invalid_request_error", "param": None,
                                               "code": "request_too_large"}}, status_code=413)
            return await response(scope, receive, send)

        async def timed(message):
            if message["type"] == "http.response.start":
                took = f"app;dur={1000 * (time.perf_counter() - start):.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", took)]}
            await send(message)

        await self.app(scope, receive, timed)


class APIError(HTTPException):
    def __init__(self, status: int, message: str, code: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(status, {"message": message, "type": kind, "param": param, "code": code})


@lru_cache(maxsize=1)
def _harmful_index():
    from tasksafe.audit import known_harmful_index

    return known_harmful_index()


def precheck(data: bytes, filename: str, scratch: Path, reader: str = "none", meaning: bool = False) -> dict:
    """Validate an uploaded training file with tasksafe's own reader (every problem with its
    line) and audit it: what the provider would flag before a job is created (`reader`,
    `meaning`: the policy's `audit_reader` and `audit_meaning`). Returns the precheck, or
    `{"error": message}` for a file that is not a training file."""
    from tasksafe.audit import audit_examples
    from tasksafe.data.chat import read_numbered_examples
    from tasksafe.errors import UserError

    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".jsonl", delete=True) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            numbered = read_numbered_examples(tmp.name)
        except UserError as err:
            return {"error": str(err).replace(tmp.name, filename)}
    if not numbered:
        return {"error": f"{filename}: no training examples"}
    read = embed = None
    if reader == "dictionary":  # the dictionaries are loaded once per process (installed_glossary)
        from tasksafe.audit.glossary import dictionary_reader

        read = dictionary_reader()
    if meaning:
        from tasksafe.judges.embedding import embed
    report = audit_examples([ex for _, ex in numbered], [n for n, _ in numbered], filename, _harmful_index(),
                            reader=read, meaning=embed)
    return {"examples": len(numbered), "risk": report.risk, "flagged": report.flagged,
            "findings": [{"code": f.code, "severity": f.severity, "title": f.title, "detail": f.detail,
                          "share": f.share, "lines": [e["line"] for e in f.evidence]} for f in report.findings]}


class PrecheckPool:
    """One process that reads and audits uploads, so that CPU-heavy work never holds the API
    process's interpreter lock while other requests wait (spawned: the server has threads).

    The process is started, and restarted, from the event loop's thread: it asks to be killed
    when the thread that started it ends (`_die_with_parent`, so it dies with the server even by
    kill -9), and a thread of the request pool ends when it has been idle a while, which killed
    the process under it and failed every later upload. A process that dies anyway (killed, out
    of memory) is replaced, and the upload it held is checked again once."""

    def __init__(self, state_root: Path, reader: str = "none", meaning: bool = False):
        self.state_root, self.reader, self.meaning = state_root, reader, meaning
        self.pool = self._start()

    @staticmethod
    def _start():
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from tasksafe.gateway.worker import _die_with_parent

        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent)

    async def check(self, data: bytes, name: str) -> dict:
        from concurrent.futures.process import BrokenProcessPool

        for attempt in (1, 2):
            try:
                return await asyncio.wrap_future(self.pool.submit(precheck, data, name, self.state_root, self.reader,
                                                                  self.meaning))
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                self.pool.shutdown(wait=False)
                self.pool = self._start()

    async def warm(self) -> None:
        """Start the process now, from the event loop's thread (the pool starts it on first use)."""
        await asyncio.wrap_future(self.pool.submit(int))

    def shutdown(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def _listing(items: list[dict], limit: int) -> dict:
    """OpenAI's list envelope; `items` holds up to limit + 1 rows, the extra one meaning more."""
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit,
            "first_id": items[0]["id"] if items else None, "last_id": items[:limit][-1]["id"] if items else None}


async def _json_object(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise APIError(400, "the body must be a JSON object", "invalid_json")
    return body


def _tenant_dependency(state: State):
    """The dependency that turns the request's bearer key into its tenant (401 otherwise).
    Routes that read are `async`: SQLite answers them in well under a millisecond, and a hop
    to the thread pool would cost more than the query. A commit waits for the disk, so routes
    that write hand the write to the thread pool and the event loop goes on serving reads."""

    async def tenant(authorization: str | None = Header(None)) -> str:
        key = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
        found = state.tenant_for(key) if key else None
        if not found:
            raise APIError(401, "invalid or missing API key (Authorization: Bearer KEY)", "invalid_api_key",
                           kind="authentication_error")
        return found

    return tenant


def create_app(state_dir: str | Path, policy=None, worker: bool = True, max_request_bytes: int = MAX_REQUEST_BYTES) -> FastAPI:
    """The app over `state_dir`; with `worker`, a worker thread runs the jobs (started with
    the server, so a restarted server resumes what a killed one left)."""
    from contextlib import asynccontextmanager

    from tasksafe.gateway.worker import Policy, Worker

    state = State(state_dir)
    policy = policy or Policy()
    pool = PrecheckPool(state.root, policy.audit_reader, policy.audit_meaning)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner = Worker(state, policy) if worker else None
        if runner:
            runner.start()
        await pool.warm()
        yield
        if runner:
            runner.stop()
        pool.shutdown()

    app = FastAPI(title="tasksafe gateway", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.gateway = state

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail), "type": "invalid_request_error",
                                                                 "param": None, "code": None}
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    app.add_middleware(SizeLimitAndTiming, max_request_bytes=max_request_bytes)

    tenant = _tenant_dependency(state)
    _file_routes(app, state, pool, tenant)
    _job_routes(app, state, policy, tenant)
    _model_routes(app, state, policy, tenant)
    _dashboard(app, state)
    return app


def _file_routes(app: FastAPI, state: State, pool, tenant) -> None:
    """/v1/files: upload (validated and audited in `pool`), list, read, delete."""
    @app.post("/v1/files")
    async def upload(file: UploadFile = File(...), purpose: str = Form(...), who: str = Depends(tenant)) -> dict:
        if purpose != "fine-tune":
            raise APIError(400, f"purpose must be 'fine-tune', not {purpose!r}", "invalid_purpose", "purpose")
        data = await file.read()
        name = Path(file.filename or "upload.jsonl").name  # a name to show, never a path to use
        checked = await pool.check(data, name)
        if "error" in checked:
            raise APIError(400, checked["error"], "invalid_file", "file")
        return await run_in_threadpool(state.add_file, who, name, data, purpose, checked)

    @app.get("/v1/files")
    async def list_files(purpose: str | None = None, after: str | None = None, limit: int = 100, who: str = Depends(tenant)):
        limit = max(1, min(limit, 10_000))
        return _listing(state.list_files(who, purpose, after, limit + 1), limit)

    def _own_file(file_id: str, who: str) -> dict:
        found = state.get_file(who, file_id)
        if not found:
            raise APIError(404, f"no file {file_id!r}", "file_not_found", "file_id")
        return found

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str, who: str = Depends(tenant)) -> dict:
        return _own_file(file_id, who)

    @app.get("/v1/files/{file_id}/content")
    def file_content(file_id: str, who: str = Depends(tenant)) -> Response:
        _own_file(file_id, who)
        return Response(state.file_path(file_id).read_bytes(), media_type="application/jsonl")

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str, who: str = Depends(tenant)) -> dict:
        _own_file(file_id, who)
        await run_in_threadpool(state.delete_file, who, file_id)
        return {"id": file_id, "object": "file", "deleted": True}


def _job_request(body: dict, who: str, state: State, policy) -> dict:
    """The job a POST /v1/fine_tuning/jobs body asks for, every field checked (400 naming it)."""
    for key in ("model", "training_file"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise APIError(400, f"{key} is required", "missing_required_parameter", key)
    if not state.get_file(who, body["training_file"]):
        raise APIError(400, f"no file {body['training_file']!r}", "invalid_training_file", "training_file")
    validation = body.get("validation_file")
    if validation is not None and (not isinstance(validation, str) or not state.get_file(who, validation)):
        raise APIError(400, f"no file {validation!r}", "invalid_validation_file", "validation_file")
    if body.get("model") not in policy.models:
        raise APIError(400, f"model {body['model']!r} is not offered; choose one of {', '.join(policy.models)}",
                       "model_not_available", "model")
    method = body.get("method") if isinstance(body.get("method"), dict) else {}
    supervised = method.get("supervised") if isinstance(method.get("supervised"), dict) else {}
    hyper = supervised.get("hyperparameters") or body.get("hyperparameters") or {}
    bad = hyperparameter_error(hyper)
    if bad:
        raise APIError(400, bad[1], "invalid_hyperparameters", bad[0])
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31):
        raise APIError(400, "seed must be an integer from 0", "invalid_seed", "seed")
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64 or not suffix.replace("-", "").isalnum()):
        raise APIError(400, "suffix: up to 64 letters, digits and hyphens", "invalid_suffix", "suffix")
    request_record = {"model": body["model"], "training_file": body["training_file"],
                      "validation_file": body.get("validation_file"), "suffix": suffix, "seed": seed,
                      "hyperparameters": hyper,
                      "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
                      "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else None}
    return request_record


def _job_routes(app: FastAPI, state: State, policy, tenant) -> None:
    """/v1/fine_tuning/jobs: create, list, retrieve, cancel, events, checkpoints."""
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request, who: str = Depends(tenant)) -> dict:
        asked = _job_request(await _json_object(request), who, state, policy)
        return await run_in_threadpool(state.add_job, who, asked)  # the commit's disk write off the event loop

    def _own_job(job_id: str, who: str) -> dict:
        found = state.get_job(who, job_id)
        if not found:
            raise APIError(404, f"no fine-tuning job {job_id!r}", "job_not_found", "fine_tuning_job_id")
        return found

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: int = 20, who: str = Depends(tenant)) -> dict:
        limit = max(1, min(limit, 1000))
        return _listing(state.list_jobs(who, after, limit + 1), limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve_job(job_id: str, who: str = Depends(tenant)) -> dict:
        return _own_job(job_id, who)

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, who: str = Depends(tenant)) -> dict:
        job = _own_job(job_id, who)
        if not await run_in_threadpool(state.cancel, job_id) and job["status"] != "cancelled":
            raise APIError(400, f"job is {job['status']}; only a job that has not finished can be cancelled",
                           "job_not_cancellable", "fine_tuning_job_id")
        return state.get_job(who, job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def job_events(job_id: str, after: str | None = None, limit: int = 20, who: str = Depends(tenant)) -> dict:
        _own_job(job_id, who)
        limit = max(1, min(limit, 1000))
        return _listing(state.events(job_id, after, limit + 1), limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def job_checkpoints(job_id: str, who: str = Depends(tenant)) -> dict:
        job = _own_job(job_id, who)
        saved = [e for e in state.events(job_id, limit=100_000) if e["type"] == "checkpoint"]
        data = [{"id": f"ftckpt-{job_id[6:14]}-{e['data']['step']}", "object": "fine_tuning.job.checkpoint",
                 "created_at": e["created_at"], "fine_tuning_job_id": job_id, "step_number": e["data"]["step"],
                 "metrics": {"step": e["data"]["step"], "train_loss": e["data"]["train_loss"]},
                 "fine_tuned_model_checkpoint": f"{job['model']}:ckpt-step-{e['data']['step']}"} for e in saved]
        return {"object": "list", "data": data, "has_more": False}


def _model_routes(app: FastAPI, state: State, policy, tenant) -> None:
    """/v1/models and /v1/chat/completions for released models."""
    @app.get("/v1/models")
    async def models(who: str = Depends(tenant)) -> dict:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "tasksafe"} for name in policy.models]
        data += [{"id": j["fine_tuned_model"], "object": "model", "created": j["finished_at"], "owned_by": who}
                 for j in state.list_jobs(who, limit=10_000) if j["status"] == "succeeded"]
        return {"object": "list", "data": data}

    backends: dict[str, object] = {}  # the last released model loaded, reused while it is asked
    serving = asyncio.Lock()

    @app.post("/v1/chat/completions")
    async def chat(request: Request, who: str = Depends(tenant)):
        from fastapi.responses import StreamingResponse

        from tasksafe.gateway import chat as chat_api

        asked = chat_api.parse(await _json_object(request))
        if isinstance(asked, tuple):
            raise APIError(400, asked[1], "invalid_request", asked[0])
        job = state.job_for_model(who, asked.model)
        if job is None:
            raise APIError(404, f"no released model {asked.model!r} (a model is released when its job succeeds)",
                           "model_not_found", "model")
        if asked.stream and asked.n == 1 and not job.get("upstream"):  # tokens sent as they are generated
            return StreamingResponse(_streamed(state, policy, backends, job, asked, serving),
                                     media_type="text/event-stream")
        async with serving:  # one request at a time uses (or swaps) the loaded model
            replies, usage = await _replies(state, policy, backends, job, asked)
        if asked.stream:
            return StreamingResponse(chat_api.chunks(asked, asked.model, replies, usage), media_type="text/event-stream")
        return chat_api.completion(asked, asked.model, replies, usage)



async def _backend(state: State, policy, backends: dict, job: dict, asked):
    """The backend serving the job's model (loaded once, kept while it is asked), and the
    request's conversation with the job's inference hook applied. Call it holding the lock."""
    from starlette.concurrency import run_in_threadpool

    from tasksafe.generate.hf import HFBackend

    if asked.model not in backends:
        backends.clear()
        if job.get("upstream"):  # trained upstream: the provider serves it
            backends[asked.model] = policy.upstream.backend(job["upstream"]["fine_tuned_model"])
        else:
            backends[asked.model] = await run_in_threadpool(
                HFBackend.from_name, job["model"], adapter=str(state.root / job["run_dir"] / "adapter"))
    return backends[asked.model], with_job_hook(state, job, asked.conversation())


async def _streamed(state: State, policy, backends: dict, job: dict, asked, serving: asyncio.Lock):
    """The reply's server-sent events as the model writes it, holding the model's lock until
    generation has ended (a stop sequence ends the events at once; the rest is generated and
    dropped)."""
    from starlette.concurrency import iterate_in_threadpool

    from tasksafe.gateway.chat import stream_events
    from tasksafe.generate.base import GenerationParams

    async with serving:
        backend, conversation = await _backend(state, policy, backends, job, asked)
        params = GenerationParams(max_new_tokens=asked.limit(), temperature=asked.temperature, top_p=asked.top_p,
                                  seed=asked.seed or 0)
        pieces = iterate_in_threadpool(backend.stream(conversation, params))
        async for event in stream_events(asked, asked.model, pieces):
            yield event


async def _replies(state: State, policy, backends: dict, job: dict, asked) -> tuple[list[tuple[str, str]], dict | None]:
    """`asked.n` replies of the job's model to its conversation with the job's inference hook
    applied, each cut at a stop sequence, with OpenAI's token usage where it is counted here."""
    from starlette.concurrency import run_in_threadpool

    from tasksafe.gateway.chat import cut_at_stop
    from tasksafe.generate.base import GenerationParams
    from tasksafe.generate.hf import HFBackend

    backend, conversation = await _backend(state, policy, backends, job, asked)
    params = [GenerationParams(max_new_tokens=asked.limit(), temperature=asked.temperature, top_p=asked.top_p,
                               seed=(asked.seed or 0) + i) for i in range(asked.n)]
    if not isinstance(backend, HFBackend):  # served upstream: its provider counted, the counts do not come back
        texts = [(await run_in_threadpool(backend.generate, [conversation], p))[0] for p in params]
        return [(cut_at_stop(t, asked.stop)[0], "stop") for t in texts], None
    done = [(await run_in_threadpool(backend.complete, [conversation], p))[0] for p in params]
    replies = []
    for reply in done:
        text, stopped = cut_at_stop(reply.text, asked.stop)
        replies.append((text, "stop" if stopped or reply.stopped else "length"))
    completion_tokens = sum(r.completion_tokens for r in done)
    return replies, {"prompt_tokens": done[0].prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": done[0].prompt_tokens + completion_tokens}


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory` in each of several API processes (`tasksafe serve
    --api-workers N`): settings come from the environment `serve` sets."""
    import os

    from tasksafe.gateway.worker import Policy
    from tasksafe.settings import load_settings

    policy = load_settings(Policy, os.environ.get("TASKSAFE_GATEWAY_POLICY") or None)
    return create_app(os.environ["TASKSAFE_GATEWAY_STATE"], policy, worker=False,
                      max_request_bytes=int(os.environ.get("TASKSAFE_GATEWAY_MAX_BYTES", MAX_REQUEST_BYTES)))


def _dashboard(app: FastAPI, state: State) -> None:
    """Server-rendered pages (Jinja2, autoescaped; no front-end build): the tenant's jobs and a
    page per job with the audit findings, the protection, the loss curve and the gate."""
    from fastapi.responses import HTMLResponse, RedirectResponse
    from fastapi.templating import Jinja2Templates

    from tasksafe.gateway import views

    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    cookie = "tasksafe_key"

    def who(request: Request) -> str | None:
        key = request.cookies.get(cookie)
        return state.tenant_for(key) if key else None

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        tenant = who(request)
        if not tenant:
            return templates.TemplateResponse(request, "login.html", {"tenant": None, "error": None})
        return templates.TemplateResponse(request, "jobs.html", {"tenant": tenant, "jobs": views.job_rows(state, tenant)})

    @app.post("/login")
    def login(key: str = Form(...)):
        if not state.tenant_for(key):
            return HTMLResponse(templates.get_template("login.html").render(tenant=None, error="unknown API key"),
                                status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(cookie, key, httponly=True, samesite="strict")
        return response

    @app.post("/logout")
    def logout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(cookie, httponly=True, samesite="strict")
        return response

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(job_id: str, request: Request):
        tenant = who(request)
        job = state.get_job(tenant, job_id) if tenant else None
        if job is None:
            return RedirectResponse("/", status_code=303)
        return templates.TemplateResponse(request, "job.html", {"tenant": tenant, **views.job_view(state, tenant, job)})
