"""The gateway's durable state: tenants, files and jobs in SQLite (WAL) under the state dir,
file contents in `files/` beside it. Every query is scoped by tenant, so one tenant's rows
are never read or changed through another's key.

>>> import tempfile
>>> state = State(tempfile.mkdtemp())
>>> key = state.create_key("acme")
>>> state.tenant_for(key) == "acme", state.tenant_for("sk-wrong")
(True, None)
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, filename TEXT NOT NULL, bytes INTEGER NOT NULL,
    purpose TEXT NOT NULL, created_at INTEGER NOT NULL, precheck TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant, created_at);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL,
    request TEXT NOT NULL, error TEXT, finished_at INTEGER, fine_tuned_model TEXT, result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, job TEXT NOT NULL, created_at INTEGER NOT NULL,
    level TEXT NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job, seq);
"""
ACTIVE = ("validating_files", "queued", "running")
KEY_ID = 12  # hex characters of a key's hash that name it in `tasksafe keys list` and `revoke`
FINISHED = ("succeeded", "failed", "cancelled")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class State:
    """One SQLite connection per thread; WAL, so readers never wait for the writer."""

    def __init__(self, state_dir: str | Path):
        self.root = Path(state_dir)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        self.path = self.root / "gateway.sqlite"
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    # --- tenants -----------------------------------------------------------------------------

    def create_key(self, tenant: str) -> str:
        """A new API key for `tenant`; only its hash is stored, so it is shown once."""
        key = "sk-ts-" + secrets.token_urlsafe(24)
        self._db().execute("INSERT INTO keys VALUES (?, ?, ?)", (_hash(key), tenant, int(time.time())))
        return key

    def list_keys(self) -> list[dict]:
        """Every key as {id, tenant, created_at}: the id is the start of the key's hash, so a key
        can be named (to revoke it) without being shown."""
        rows = self._db().execute("SELECT hash, tenant, created_at FROM keys ORDER BY created_at, tenant").fetchall()
        return [{"id": r["hash"][:KEY_ID], "tenant": r["tenant"], "created_at": r["created_at"]} for r in rows]

    def revoke_keys(self, key_id: str | None = None, tenant: str | None = None) -> int:
        """Delete the key with id `key_id`, or every key of `tenant`; returns how many went."""
        if key_id:
            return self._db().execute("DELETE FROM keys WHERE substr(hash, 1, ?) = ?", (KEY_ID, key_id)).rowcount
        return self._db().execute("DELETE FROM keys WHERE tenant = ?", (tenant,)).rowcount

    def tenant_for(self, key: str) -> str | None:
        row = self._db().execute("SELECT tenant FROM keys WHERE hash = ?", (_hash(key),)).fetchone()
        return row["tenant"] if row else None

    # --- files --------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        """Where a file's bytes live: named by its id alone (never by anything a request sent)."""
        return self.root / "files" / file_id

    def add_file(self, tenant: str, filename: str, data: bytes, purpose: str, precheck: dict) -> dict:
        file_id = "file-" + secrets.token_hex(12)
        tmp = self.file_path(file_id).with_suffix(".part")
        tmp.write_bytes(data)
        tmp.rename(self.file_path(file_id))
        row = (file_id, tenant, filename, len(data), purpose, int(time.time()), json.dumps(precheck))
        self._db().execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        return self.get_file(tenant, file_id)

    def get_file(self, tenant: str, file_id: str) -> dict | None:
        row = self._db().execute("SELECT * FROM files WHERE id = ? AND tenant = ?", (file_id, tenant)).fetchone()
        return _file(row) if row else None

    def list_files(self, tenant: str, purpose: str | None = None, after: str | None = None, limit: int = 100) -> list[dict]:
        query, args = "SELECT * FROM files WHERE tenant = ?", [tenant]
        if purpose:
            query, args = query + " AND purpose = ?", args + [purpose]
        if after:
            anchor = self.get_file(tenant, after)
            if anchor:
                query, args = query + " AND (created_at, id) < (?, ?)", args + [anchor["created_at"], after]
        rows = self._db().execute(query + " ORDER BY created_at DESC, id DESC LIMIT ?", args + [limit]).fetchall()
        return [_file(r) for r in rows]

    def delete_file(self, tenant: str, file_id: str) -> bool:
        cursor = self._db().execute("DELETE FROM files WHERE id = ? AND tenant = ?", (file_id, tenant))
        if cursor.rowcount:
            self.file_path(file_id).unlink(missing_ok=True)
        return bool(cursor.rowcount)


    # --- jobs ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self):
        """Statements committed together (one write to disk) or not at all."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def add_job(self, tenant: str, request: dict) -> dict:
        """A new job with its first event, committed together: once this returns, a restart
        finds the job."""
        job_id = "ftjob-" + secrets.token_hex(12)
        with self.transaction() as db:
            db.execute("INSERT INTO jobs (id, tenant, created_at, status, request) VALUES (?, ?, ?, ?, ?)",
                       (job_id, tenant, int(time.time()), "validating_files", json.dumps(request)))
            self.event(job_id, "info", "message", "job created; validating files")
        return self.get_job(tenant, job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not finished, with its event, in one commit; True when it moved."""
        with self.transaction():
            moved = self.set_status(job_id, "cancelled")
            if moved:
                self.event(job_id, "info", "message", "cancellation requested")
        return moved

    def get_job(self, tenant: str | None, job_id: str) -> dict | None:
        query, args = "SELECT * FROM jobs WHERE id = ?", [job_id]
        if tenant is not None:
            query, args = query + " AND tenant = ?", args + [tenant]
        row = self._db().execute(query, args).fetchone()
        return _job(row) if row else None

    def list_jobs(self, tenant: str, after: str | None = None, limit: int = 20) -> list[dict]:
        query, args = "SELECT * FROM jobs WHERE tenant = ?", [tenant]
        anchor = self.get_job(tenant, after) if after else None
        if anchor:
            query, args = query + " AND (created_at, id) < (?, ?)", args + [anchor["created_at"], after]
        rows = self._db().execute(query + " ORDER BY created_at DESC, id DESC LIMIT ?", args + [limit]).fetchall()
        return [_job(r) for r in rows]

    def job_for_model(self, tenant: str, model: str) -> dict | None:
        """The tenant's succeeded job that released `model`."""
        row = self._db().execute("SELECT * FROM jobs WHERE tenant = ? AND fine_tuned_model = ? AND status = 'succeeded'",
                                 (tenant, model)).fetchone()
        if row is None:
            return None
        result = json.loads(row["result"])
        return _job(row) | {"run_dir": result.get("run_dir"), "upstream": result.get("upstream")}

    def set_status(self, job_id: str, status: str, *, expect: tuple[str, ...] = ACTIVE, error: dict | None = None,
                   model: str | None = None, result: dict | None = None) -> bool:
        """Move a job to `status` if it is in one of `expect` (so a cancelled job stays
        cancelled); True when it moved."""
        finished = int(time.time()) if status in FINISHED else None
        cursor = self._db().execute(
            f"UPDATE jobs SET status = ?, error = COALESCE(?, error), finished_at = COALESCE(?, finished_at), "
            f"fine_tuned_model = COALESCE(?, fine_tuned_model), result = COALESCE(?, result) "
            f"WHERE id = ? AND status IN ({','.join('?' * len(expect))})",
            (status, json.dumps(error) if error else None, finished, model, json.dumps(result) if result else None,
             job_id, *expect))
        return bool(cursor.rowcount)

    def claim(self) -> dict | None:
        """The oldest job to work on: one left running by a worker that died (resumed), else
        the oldest queued one; its attempts counted."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE status IN ('running', 'validating_files', 'queued') "
                             "ORDER BY CASE status WHEN 'running' THEN 0 ELSE 1 END, created_at, id LIMIT 1").fetchone()
            if row:
                db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (row["id"],))
        return self.get_job(None, row["id"]) | {"tenant": row["tenant"]} if row else None

    def event(self, job_id: str, level: str, kind: str, message: str, data: dict | None = None,
              once: bool = False) -> None:
        """Add an event; with `once`, not when the job already has one of this type and message
        (a stage redone after a restart is reported once)."""
        if once and self._db().execute("SELECT 1 FROM events WHERE job = ? AND type = ? AND message = ?",
                                       (job_id, kind, message)).fetchone():
            return
        event_id = "ftevent-" + secrets.token_hex(8)
        self._db().execute("INSERT INTO events (id, job, created_at, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (event_id, job_id, int(time.time()), level, kind, message, json.dumps(data) if data else None))

    def events(self, job_id: str, after: str | None = None, limit: int = 20) -> list[dict]:
        """Newest first, as OpenAI lists them; `after` is an event id."""
        query, args = "SELECT * FROM events WHERE job = ?", [job_id]
        if after:
            seq = self._db().execute("SELECT seq FROM events WHERE id = ?", (after,)).fetchone()
            if seq:
                query, args = query + " AND seq < ?", args + [seq["seq"]]
        rows = self._db().execute(query + " ORDER BY seq DESC LIMIT ?", args + [limit]).fetchall()
        return [{"id": r["id"], "object": "fine_tuning.job.event", "created_at": r["created_at"], "level": r["level"],
                 "type": r["type"], "message": r["message"], "data": json.loads(r["data"]) if r["data"] else None}
                for r in rows]


def _job(row: sqlite3.Row) -> dict:
    request = json.loads(row["request"])
    result = json.loads(row["result"]) if row["result"] else {}
    return {"id": row["id"], "object": "fine_tuning.job", "created_at": row["created_at"], "status": row["status"],
            "model": request["model"], "training_file": request["training_file"],
            "validation_file": request.get("validation_file"), "seed": request.get("seed", 0),
            "suffix": request.get("suffix"), "metadata": request.get("metadata"),
            "hyperparameters": request.get("hyperparameters", {}), "method": request.get("method"),
            "fine_tuned_model": row["fine_tuned_model"], "finished_at": row["finished_at"],
            "error": json.loads(row["error"]) if row["error"] else None, "organization_id": "tasksafe",
            "result_files": [], "trained_tokens": result.get("trained_tokens"), "integrations": [],
            "estimated_finish": None, "attempts": row["attempts"], "gate": result.get("gate"),
            "protection": result.get("protection"), "audit": result.get("audit"),
            "validation": {"valid_loss": result["valid_loss"]} if result.get("valid_loss") is not None else None}


def _file(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"],
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed", "status_details": None,
            "precheck": json.loads(row["precheck"])}
