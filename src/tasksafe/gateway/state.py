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
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, filename TEXT NOT NULL, bytes INTEGER NOT NULL,
    purpose TEXT NOT NULL, created_at INTEGER NOT NULL, precheck TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant, created_at);
"""


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


def _file(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"],
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed", "status_details": None,
            "precheck": json.loads(row["precheck"])}
