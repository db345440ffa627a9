"""How every command reads and writes files. Inputs are treated as hostile (a provider's users
upload them): only regular files are read, so a device or a FIFO can neither spin nor block;
text must be UTF-8. Outputs are written to temporary files and renamed into place, with the
umask's permissions, so a reader never sees half a file; a file and the sidecar that
describes it are committed as one unit; an output that would replace one of the inputs is
refused unless the user asks for it. docs/reliability.md lists these guarantees and the
tests that hold the code to them.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_json(folder / "a.json", {"x": 1})
>>> check_outputs([folder / "a.json"], inputs=[folder / "a.json"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tasksafe.errors.OutputError: ... is also an input; writing it would destroy that input. Choose another output, ...
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tasksafe.errors import DataFileError, OutputError

MAX_LINE_BYTES = 16 * 2**20
"""The longest JSONL line read (16 MiB); a longer one is reported, never loaded whole."""

MAX_TEXT_BYTES = 256 * 2**20
"""The largest whole-file text input (a spec, an Alpaca JSON list) read at once."""

_SKIP_CHUNK = 2**20
_TEMP_SUFFIX = ".tmp"


# --- reading --------------------------------------------------------------------------------

def open_input(path: str | os.PathLike) -> IO[bytes]:
    """Open a regular file for binary reading, or raise `DataFileError` saying why not.

    The file is opened without blocking (a FIFO with no writer would block `open` forever)
    and refused unless it is a regular file (`/dev/zero` never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DataFileError(str(path), "no such file") from None
    except PermissionError:
        raise DataFileError(str(path), "cannot be read (permission denied)") from None
    except OSError as err:
        raise DataFileError(str(path), f"cannot be opened ({err.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise DataFileError(str(path), f"is {what}, not a regular file; tasksafe reads only regular files")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_text(path: str | os.PathLike, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A whole regular file as UTF-8 text; a clean `DataFileError` for anything else."""
    with open_input(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DataFileError(str(path), f"is larger than {max_bytes // 2**20} MiB, the limit for this kind of file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFileError(str(path), f"is not valid UTF-8 (byte 0x{data[err.start]:02x})", line) from None


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


MAX_DEPTH = 64
"""The deepest nesting of lists and objects accepted in one JSON value."""


class UnsafeJSON(ValueError):
    """A decoded JSON value that tasksafe will not take (the message is a clause)."""


def _reject_constant(name: str):
    raise UnsafeJSON(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise UnsafeJSON(f"the number {text[:20]} is too large for a float")
    return value


def loads_strict(text: str) -> Any:
    """`json.loads` for hostile text: NaN, Infinity and numbers out of range are refused,
    nesting deeper than `MAX_DEPTH` and lone surrogates (text no file can hold) too.

    Raises `json.JSONDecodeError` for malformed JSON and `UnsafeJSON` for the rest."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise UnsafeJSON(f"values are nested more than {MAX_DEPTH} deep") from None
    except ValueError as err:  # JSONDecodeError is one; int() of 5,000 digits is another
        if isinstance(err, (json.JSONDecodeError, UnsafeJSON)):
            raise
        raise UnsafeJSON(f"a number is out of range ({str(err).split(';')[0]})") from None
    check_json_value(value)
    return value


def check_json_value(value: Any) -> None:
    """Raise `UnsafeJSON` if `value` nests deeper than `MAX_DEPTH` or holds a string with a
    lone surrogate. Iterative, so no depth can overflow the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                raise UnsafeJSON(f"a string holds a lone surrogate (\\u{ord(item[err.start]):04x}), which is not "
                                 "text a file can hold") from None
        elif isinstance(item, (list, dict)):
            if depth > MAX_DEPTH:
                raise UnsafeJSON(f"values are nested more than {MAX_DEPTH} deep")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    stack.append((key, depth))
                stack.append((child, depth + 1))


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that never writes NaN or Infinity (they are not JSON)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, **kwargs)


# --- writing --------------------------------------------------------------------------------

def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (through links, `..` or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output_path(path: str | os.PathLike) -> None:
    """Raise `OutputError` unless a regular file can be created or replaced at `path`."""
    path = Path(path)
    if path.is_symlink() or path.exists():
        if path.is_dir():
            raise OutputError(str(path), "is a directory; give a file name")
        if not path.is_file():
            raise OutputError(str(path), "exists and is not a regular file; tasksafe replaces only regular files")
    _check_ancestors(path)


def check_output_dir(path: str | os.PathLike) -> None:
    """Raise `OutputError` unless `path` is a folder or can be created as one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(str(path), "is a file; give a folder")
    _check_ancestors(path)


def _check_ancestors(path: Path) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(str(path), f"cannot be created: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise OutputError(str(path), f"cannot be created: {parent} is not writable")
            return


def check_outputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike] = (),
                  force: bool = False) -> None:
    """Refuse, before any work is done, outputs that cannot be written and outputs that would
    replace one of the inputs (unless `force`: the input is then read whole before it is
    replaced, and replaced atomically)."""
    inputs = [Path(p) for p in inputs]
    for output in map(Path, outputs):
        check_output_path(output)
        if force:
            continue
        for source in inputs:
            if same_file(output, source):
                raise OutputError(str(output), "is also an input; writing it would destroy that input. Choose "
                                               "another output, or pass --force to replace it")


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp(path: Path) -> tuple[IO[Any], str]:
    """A temporary file beside `path` with the mode `path` will have: its own if it exists,
    else what the umask gives a new file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    except OSError as err:
        raise OutputError(str(path), f"cannot be written ({err.strerror})") from None
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~current_umask()
        os.fchmod(fd, mode)
    except OSError:
        pass
    return os.fdopen(fd, "wb"), tmp


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on a folder, held while files in it are renamed into place, so two
    processes writing the same outputs commit one after the other, never interleaved."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)


@contextlib.contextmanager
def atomic_files(*paths: str | os.PathLike, mode: str = "w") -> Iterator[list[IO[Any]]]:
    """Write several files as one unit: yields one handle per path; on success every file is
    renamed into place under a folder lock, on failure (an exception, Ctrl-C, SIGTERM through
    the CLI's handler) every temporary file is removed and nothing is replaced.

    The first path is the primary; the others describe it (a sidecar). Before the primary is
    replaced, the old dependents are removed, so a crash in the middle of the commit leaves
    the new primary without a sidecar, never beside the sidecar of another run."""
    targets = [Path(p) for p in paths]
    for target in targets:
        check_output_path(target)
    temps: list[tuple[IO[Any], str]] = []
    try:
        for target in targets:
            temps.append(_new_temp(target))
        handles = [handle if "b" in mode else _text(handle) for handle, _ in temps]
        yield handles
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        with _folder_lock(targets[0].parent):
            for target in targets[1:]:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
            for (_, tmp), target in zip(temps, targets):
                try:
                    os.replace(tmp, target)
                except OSError as err:
                    raise OutputError(str(target), f"cannot be written ({err.strerror})") from None
    except OSError as err:
        _discard(temps)
        if err.errno in _DISK_ERRORS:
            raise OutputError(str(targets[0]), f"cannot be written ({err.strerror})") from None
        raise
    except BaseException:
        _discard(temps)
        raise


def _text(handle: IO[bytes]) -> IO[str]:
    import io

    return io.TextIOWrapper(handle, encoding="utf-8", newline="")


def _discard(temps: Sequence[tuple[IO[Any], str]]) -> None:
    for handle, tmp in temps:
        with contextlib.suppress(OSError, ValueError):
            handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """One file written atomically (see `atomic_files`)."""
    with atomic_files(path, mode=mode) as (handle,):
        yield handle


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (NaN and Infinity are refused: not JSON)."""
    with atomic_write(path) as handle:
        handle.write(dumps_strict(obj, indent=2))
        handle.write("\n")
