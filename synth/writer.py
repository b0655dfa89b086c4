"""The output directory of a run: append-only raw rollouts, failures, curated shards and the manifest.

Layout of ``out/`` (``{tag}`` is empty for ``shard=0/1``, else ``-shard{i}of{n}``)::

    run{tag}.json               the config and its hash, written first (resume checks it)
    raw/rollouts{tag}.jsonl     every finished episode, one line each, appended as they finish
    failures{tag}.jsonl         episodes whose infrastructure failed on every attempt
    data/train{tag}-00000.jsonl the curated dataset (``.jsonl.zst`` with compression=zstd)
    manifest{tag}.json          config, counts, schema version and file hashes, written last

Crash safety: a raw line goes out in one flushed write and a torn last line is cut off on resume,
so ``kill -9`` loses at most the episodes in flight. Everything else is written to a temporary file
and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError, DataError
from agentkit.jsonl import JsonlWriter, repair_torn_tail
from agentkit.paths import atomic_write_bytes, atomic_write_json, atomic_write_text
from agentkit.records import SCHEMA_VERSION


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in str(text).split("/"))
        except ValueError:
            raise ConfigError(f"shard: expected 'i/n' (e.g. 0/4), got '{text}'") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"shard: need 0 <= i < n, got '{text}'")
        return cls(index, count)

    @property
    def tag(self) -> str:
        return "" if self.count == 1 else f"-shard{self.index}of{self.count}"

    def owns(self, task_id: str) -> bool:
        """Deterministic split by a stable hash of the task id (independent of task order)."""
        if self.count == 1:
            return True
        digest = hashlib.sha256(task_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): obj}


def config_diff(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> str:
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    shown = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit]]
    return "; ".join(shown) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def structure(value: Any, path: str = "", out: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """The (path, JSON type) pairs of a record; list items share the path ``[]``. Nulls add nothing."""
    out = set() if out is None else out
    if isinstance(value, dict):
        out.add((path, "object"))
        for key, item in value.items():
            structure(item, f"{path}/{key}", out)
    elif isinstance(value, list):
        out.add((path, "array"))
        for item in value:
            structure(item, f"{path}/[]", out)
    elif value is not None:
        out.add((path, type(value).__name__))
    return out


def arrow_order(records: Iterable[dict[str, Any]]) -> list[int]:
    """An order of ``records`` whose first rows show every field and type that occurs anywhere.

    ``datasets.load_dataset("json")`` infers the features from the first rows of the first file: a key
    or a type that first appears later (another task kind's metadata, another tool schema) fails the
    cast. Rows that add something new go first (in their given order), then the rest.
    """
    seen: set[tuple[str, str]] = set()
    front, rest = [], []
    for index, record in enumerate(records):
        pairs = structure(record)
        if pairs - seen:
            seen |= pairs
            front.append(index)
        else:
            rest.append(index)
    return front + rest


class RunDir:
    """One shard's files in ``out/``; see the module docstring for the layout."""

    def __init__(
        self, out: str | os.PathLike, shard: Shard = Shard(), *, kind: str = "synth", fsync: bool = False
    ):
        self.root = Path(out)
        self._fsync = fsync
        self.shard = shard
        self.kind = kind
        tag = shard.tag
        self.run_file = self.root / f"run{tag}.json"
        self.raw_path = self.root / "raw" / f"rollouts{tag}.jsonl"
        self.failures_path = self.root / f"failures{tag}.jsonl"
        self.data_dir = self.root / "data"
        self.data_prefix = f"train{tag}-"
        self.manifest_path = self.root / f"manifest{tag}.json"
        self.report_path = self.root / f"report{tag}.json"
        self.plots_dir = self.root / f"plots{tag}"
        self._raw: JsonlWriter | None = None
        self._failures: JsonlWriter | None = None

    def prepare(
        self, config: dict[str, Any], hashed: dict[str, Any], config_sha256: str, resume: str
    ) -> set[str]:
        """Check ``out/`` against this config and return the keys of the episodes already finished."""
        if resume not in ("auto", "overwrite"):
            raise ConfigError(f"resume: expected 'auto' or 'overwrite', got '{resume}'")
        if self.run_file.exists():
            try:
                previous = json.loads(self.run_file.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"unreadable run file ({exc.msg}); use resume=overwrite", str(self.run_file)
                ) from None
            if previous.get("kind", self.kind) != self.kind:
                raise ConfigError(
                    f"out={self.root} holds an 'agentkit {previous.get('kind')}' run; choose another out"
                )
            if resume == "auto" and previous.get("config_sha256") != config_sha256:
                diff = config_diff(previous.get("hashed", {}), hashed)
                raise ConfigError(
                    f"out={self.root} holds a run with another config ({diff}); rerun with "
                    f"resume=overwrite to replace it, or choose a new out"
                )
        if resume == "overwrite":
            self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.run_file,
            {
                "kind": self.kind,
                "config_sha256": config_sha256,
                "hashed": hashed,
                "config": config,
                "shard": f"{self.shard.index}/{self.shard.count}",
                "schema_version": SCHEMA_VERSION,
            },
        )
        return self.finished_keys()

    def clear(self) -> None:
        for path in (self.run_file, self.raw_path, self.failures_path, self.manifest_path, self.report_path):
            path.unlink(missing_ok=True)
        for path in self.data_files():
            path.unlink()
        shutil.rmtree(self.plots_dir, ignore_errors=True)

    def finished_keys(self) -> set[str]:
        keys: set[str] = set()
        for _, record in self.iter_raw():
            keys.add(record.get("meta", {}).get("key"))
        keys.discard(None)
        return keys

    def iter_raw(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(byte offset, record)`` for each raw line, after cutting a torn tail left by a crash."""
        if not self.raw_path.exists():
            return
        repair_torn_tail(self.raw_path)
        with open(self.raw_path, "rb") as handle:
            offset = 0
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield offset, json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(
                            f"invalid JSON ({exc.msg}); use resume=overwrite", str(self.raw_path), number
                        ) from None
                offset += len(line)

    def read_raw_line(self, handle, offset: int) -> dict[str, Any]:
        handle.seek(offset)
        return json.loads(handle.readline())

    def open_writers(self) -> None:
        self._raw = JsonlWriter(self.raw_path, fsync=self._fsync)
        self._failures = JsonlWriter(self.failures_path)

    def write_trajectory(self, record: Any) -> None:
        if self._raw is None:
            self.open_writers()
        assert self._raw is not None
        self._raw.write(record)

    def write_failure(self, failure: dict[str, Any]) -> None:
        if self._failures is None:
            self.open_writers()
        assert self._failures is not None
        self._failures.write(failure)

    def close(self) -> None:
        for writer in (self._raw, self._failures):
            if writer is not None:
                writer.close()
        self._raw = self._failures = None

    def current_failures(self, finished: set[str]) -> list[dict[str, Any]]:
        """The last failure of each episode that has not finished since; rewrites the file to those."""
        if not self.failures_path.exists():
            return []
        repair_torn_tail(self.failures_path)
        latest: dict[str, dict[str, Any]] = {}
        with open(self.failures_path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    latest[record["key"]] = record
        current = [r for k, r in sorted(latest.items(), key=lambda kv: kv[1]["id"]) if k not in finished]
        atomic_write_text(self.failures_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in current))
        return current

    def data_files(self) -> list[Path]:
        if not self.data_dir.exists():
            return []
        return sorted(
            p
            for p in self.data_dir.iterdir()
            if p.name.startswith(self.data_prefix) and p.name.endswith((".jsonl", ".jsonl.zst"))
        )

    def write_dataset(
        self, lines: Iterator[str], *, compression: str = "none", rows_per_file: int = 10000
    ) -> list[dict[str, Any]]:
        """Write JSON lines into numbered shards (each written aside, then renamed); remove stale ones."""
        if compression not in ("none", "zstd"):
            raise ConfigError(f"output.compression: expected 'none' or 'zstd', got '{compression}'")
        if rows_per_file < 1:
            raise ConfigError("output.rows_per_file must be >= 1")
        suffix = ".jsonl.zst" if compression == "zstd" else ".jsonl"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        buffer: list[str] = []
        infos: list[dict[str, Any]] = []

        def flush() -> None:
            path = self.data_dir / f"{self.data_prefix}{len(written):05d}{suffix}"
            payload = "".join(buffer).encode("utf-8")
            if compression == "zstd":
                import zstandard

                payload = zstandard.ZstdCompressor(level=10).compress(payload)
            atomic_write_bytes(path, payload)
            written.append(path)
            infos.append(
                {
                    "path": str(path.relative_to(self.root)),
                    "rows": len(buffer),
                    "bytes": len(payload),
                    "sha256": hashlib.sha256(payload).hexdigest(),
                }
            )
            buffer.clear()

        for line in lines:
            buffer.append(line if line.endswith("\n") else line + "\n")
            if len(buffer) >= rows_per_file:
                flush()
        if buffer or not written:
            flush()
        for stale in self.data_files():
            if stale not in written:
                stale.unlink()
        return infos

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)
