"""Where agentkit keeps files: the cache root, and writes that never leave a torn file behind.

Bottom layer: the standard library only, so every layer (core, envs, synth, train) can use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def cache_root() -> Path:
    """``$AGENTKIT_CACHE``, else ``~/.cache/agentkit``: models, templates, corpora, mutant checks."""
    return Path(os.environ.get("AGENTKIT_CACHE") or Path.home() / ".cache" / "agentkit").expanduser()


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (not created: callers create it when they first write)."""
    return cache_root().joinpath(*parts)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; some filesystems cannot open a directory, and then there is nothing to do."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary path next to ``path`` for the body to write and close; then it replaces ``path`` in one
    rename. Readers see the old file or the whole new one, never a part; a failed body leaves no temporary.

    ``fsync`` flushes the data (and the rename) to disk, so a power loss cannot leave an empty file either.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", *, fsync: bool = True, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, atomically (see ``atomic_path``); text modes default to UTF-8."""
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    with atomic_open(path, "wb", fsync=fsync) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    with atomic_open(path, "w", fsync=fsync) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = True) -> None:
    """Pretty, key-sorted JSON (stable bytes for the same object), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", fsync=fsync)
