"""File plumbing shared by every stage: atomic writes and bounded line reading."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

MAX_LINE_BYTES = 16 * 2**20
"""The longest JSONL line read (16 MiB); a longer one is reported, never loaded whole."""

_SKIP_CHUNK = 2**20


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success rename it over `path`, on failure
    delete it, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


class LineTooLong:
    """Marker yielded by `iter_raw_lines` in place of a line over the size limit."""

    def __init__(self, size_at_least: int):
        self.size_at_least = size_at_least


def iter_raw_lines(handle: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | LineTooLong]]:
    """Yield (1-based line number, raw bytes without the newline) for each line of a binary
    file. A line longer than `max_bytes` is skipped in 1 MiB chunks and yielded as a
    `LineTooLong` marker, so one enormous line costs neither memory nor much time."""
    number = 0
    while True:
        raw = handle.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            while True:
                chunk = handle.readline(_SKIP_CHUNK)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield number, LineTooLong(size)
            continue
        yield number, raw.rstrip(b"\r\n")
