"""Generations cached on disk, keyed by model, adapter, conversation and parameters: judging
again costs nothing, and an interrupted evaluation resumes where it stopped (every finished
chunk is committed). SQLite in WAL mode, from the standard library."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from tasksafe.generate.base import Conversation, GenerationParams
from tasksafe.paths import cache_dir


def file_fingerprint(path: str | Path | None) -> str:
    """A short hash of a file or of every file in a folder (name and bytes); '' for None."""
    if path is None:
        return ""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*") if path.is_dir() else [path]):
        if file.is_file() and "checkpoint" not in file.parts[-2]:
            digest.update(file.name.encode())
            digest.update(file.read_bytes() if file.stat().st_size < 2**28 else str(file.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:16]


class GenerationCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else cache_dir() / "generations.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        self._db.commit()

    @staticmethod
    def key(model_id: str, conversation: Conversation, params: GenerationParams) -> str:
        payload = json.dumps([model_id, list(conversation), params.to_dict()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            rows = self._db.execute(f"SELECT key, response FROM generations WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            found.update(rows)
        return found

    def put_many(self, items: dict[str, str]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?)", items.items())

    def close(self) -> None:
        self._db.close()


class CachedBackend:
    """Wraps a backend: cached conversations are answered from disk, the rest generated in
    chunks, each committed as soon as it is done."""

    def __init__(self, backend, model_id: str, cache: GenerationCache | None = None, chunk_size: int = 256):
        self.backend, self.model_id, self.chunk_size = backend, model_id, chunk_size
        self.cache = cache or GenerationCache()
        self.name = getattr(backend, "name", "backend")
        self.generated = 0  # how many conversations this object had to generate (not cached)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams = GenerationParams()) -> list[str]:
        keys = [GenerationCache.key(self.model_id, c, params) for c in conversations]
        known = self.cache.get_many(keys)
        first: dict[str, int] = {}  # a conversation asked twice is generated once
        missing = [first.setdefault(k, i) for i, k in enumerate(keys) if k not in known and k not in first]
        for start in range(0, len(missing), self.chunk_size):
            chunk = missing[start:start + self.chunk_size]
            texts = self.backend.generate([conversations[i] for i in chunk], params)
            fresh = {keys[i]: text for i, text in zip(chunk, texts)}
            self.cache.put_many(fresh)
            known.update(fresh)
            self.generated += len(chunk)
        return [known[k] for k in keys]

    def scoring_model(self) -> tuple | None:
        return self.backend.scoring_model() if hasattr(self.backend, "scoring_model") else None
