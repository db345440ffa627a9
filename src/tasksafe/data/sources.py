"""Find the file behind a dataset: the local mirror first, then the pinned public source.

Every file the registry reads is pinned in `pins.tsv` (path, rows, size, SHA-256 and
`owner/repo@commit:path`). Resolution order for a relative path such as
`tasks/sst2/dev.tsv`:

1. `$TASKSAFE_DATA_DIR/<path>`, checked against the mirror's own MANIFEST.tsv the first time
   it is used (the verdict is cached by size and modification time);
2. a copy downloaded earlier into `<cache>/data/<path>`;
3. a download of the pinned commit's raw file, verified against the pinned SHA-256 and
   written atomically into the cache. Downloads need network access; this project's own
   machines have none, so there only the mirror works.
"""

from __future__ import annotations

import csv
import hashlib
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from tasksafe.data.io import atomic_write
from tasksafe.errors import UserError
from tasksafe.paths import cache_dir, data_dir

Transport = Callable[[str], bytes]
"""Fetches a URL's bytes; swapped for a fake in tests."""

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class Pin:
    relative_path: str
    rows: int | None
    bytes: int
    sha256: str
    source: str  # owner/repo@commit:path

    @property
    def url(self) -> str:
        repo, rest = self.source.split("@", 1)
        commit, path = rest.split(":", 1)
        return RAW_URL.format(repo=repo, commit=commit, path=path)


def _read_tsv(lines) -> list[dict[str, str]]:
    return list(csv.DictReader((line for line in lines if not line.startswith("#")), delimiter="\t"))


@cache
def pins() -> dict[str, Pin]:
    text = resources.files("tasksafe.data").joinpath("pins.tsv").read_text(encoding="utf-8")
    return {
        row["relative_path"]: Pin(row["relative_path"], int(row["rows"]) if row["rows"].isdigit() else None,
                                  int(row["bytes"]), row["sha256"], row["source"])
        for row in _read_tsv(text.splitlines())
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def urllib_transport(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (pinned https URL)
        return response.read()


class DataFiles:
    """Resolves relative dataset paths to verified local files."""

    def __init__(self, mirror: Path | None | str = "env", cache: Path | None = None,
                 transport: Transport = urllib_transport):
        """`mirror="env"` (default) reads TASKSAFE_DATA_DIR; `None` means no mirror."""
        self.mirror = data_dir() if mirror == "env" else mirror
        self.cache = (cache if cache is not None else cache_dir()) / "data"
        self.transport = transport

    def available_locally(self, relative_path: str) -> bool:
        return bool(self.mirror and (self.mirror / relative_path).is_file()) or (self.cache / relative_path).is_file()

    def path(self, relative_path: str) -> Path:
        if self.mirror and (self.mirror / relative_path).is_file():
            local = self.mirror / relative_path
            self._verify_mirror_file(relative_path, local)
            return local
        cached = self.cache / relative_path
        if cached.is_file():
            return cached
        return self._download(relative_path, cached)

    # -- mirror verification ---------------------------------------------------------------

    @cached_property
    def _manifest(self) -> dict[str, str]:
        manifest = self.mirror / "MANIFEST.tsv"
        if not manifest.is_file():
            return {}
        with open(manifest, encoding="utf-8") as handle:
            return {row["relative_path"]: row["sha256"] for row in _read_tsv(handle)}

    def _verify_mirror_file(self, relative_path: str, local: Path) -> None:
        stat = local.stat()
        key = str(local.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        record_path = self.cache / "verified.json"
        try:
            verified = json.loads(record_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            verified = {}
        if verified.get(key, {}).get("stamp") == stamp:
            return
        pin = pins().get(relative_path)
        expected = self._manifest.get(relative_path) or (pin.sha256 if pin else "")
        if not expected:
            raise UserError(f"{local}: not listed in {self.mirror / 'MANIFEST.tsv'}; cannot verify it")
        actual = sha256_of(local)
        if actual != expected:
            raise UserError(f"{local}: SHA-256 {actual[:12]}... does not match the manifest's {expected[:12]}...; "
                            "the mirror copy is damaged or edited, replace it")
        verified[key] = {"stamp": stamp, "sha256": actual}
        try:
            with atomic_write(record_path) as handle:
                json.dump(verified, handle)
        except OSError:
            pass  # a read-only cache only costs a re-check next time

    # -- download --------------------------------------------------------------------------

    def _download(self, relative_path: str, target: Path) -> Path:
        pin = pins().get(relative_path)
        if pin is None:
            raise UserError(f"no pinned source for {relative_path!r}; add it to tasksafe/data/pins.tsv")
        try:
            payload = self.transport(pin.url)
        except Exception as err:  # any network failure: say what to do instead
            where = f"TASKSAFE_DATA_DIR ({self.mirror})" if self.mirror else "TASKSAFE_DATA_DIR (not set)"
            raise UserError(f"cannot download {relative_path} from {pin.url} ({type(err).__name__}: {err}); "
                            f"point {where} at a local mirror with that file") from None
        actual = hashlib.sha256(payload).hexdigest()
        if actual != pin.sha256:
            raise UserError(f"downloaded {relative_path} has SHA-256 {actual[:12]}..., expected {pin.sha256[:12]}...; "
                            "refusing to use it")
        with atomic_write(target, "wb") as handle:
            handle.write(payload)
        return target
