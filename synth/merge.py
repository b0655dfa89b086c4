"""``agentkit curate runs/a runs/b ... out=runs/merged``: curation across the datasets of many runs.

Each run (a shard, a machine, another day) curated its own rollouts; duplicates across runs survive
that. This command applies exact and MinHash near-duplicate removal, decontamination and per-task caps
over all of them at once, and writes one dataset with a manifest that records what was dropped and why.

Deterministic: every record gets a rank from its content alone (hashes of task id, sample, trajectory
id and the whole line), and "first" always means lowest rank, so the result is the same whatever the
order of the inputs on the command line or of the lines in a file. Output files are written in sorted
input-path order.

Streaming, bounded memory: the records are read three times and never held; memory holds one fixed-size
row per trajectory (rank hashes, a 128-bit content digest, the MinHash LSH band hashes, a drop code:
``INDEX_BYTES`` + 8 per band) plus the few records that share a bucket with another.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkit import __version__
from agentkit.errors import ConfigError, DataError
from agentkit.records import SCHEMA_VERSION
from agentkit.synth.config import CurateConfig
from agentkit.synth.curate import DecontamIndex, decontam_index_from_tasks, record_text, shingles
from agentkit.synth.writer import RunDir, file_sha256, structure

DATASET_SUFFIXES = (".jsonl", ".jsonl.zst")
KEEP, EXACT, NEAR, CAP, CONTAMINATED = 0, 1, 2, 3, 4
REASONS = {EXACT: "duplicate", NEAR: "near_duplicate", CAP: "per_task_cap", CONTAMINATED: "contaminated"}
INDEX_BYTES = 8 * 6 + 4 + 1
"""Per trajectory: task, sample, id and line hashes, a 128-bit digest, the file number and a drop code."""


def rewrite_args(args: list[str]) -> list[str]:
    """``agentkit curate runs/a runs/b out=...``: the bare paths become ``inputs=[...]``."""
    from agentkit.cli import bare_paths_to_list

    return bare_paths_to_list(args, "inputs")


def dataset_files(inputs: list[str], out: Path) -> list[Path]:
    """The dataset files of every input (a run directory's ``data/``, or a file), in sorted path order."""
    if not inputs:
        raise ConfigError(
            "inputs: name at least one run directory or dataset file (agentkit curate runs/a runs/b)"
        )
    files: set[Path] = set()
    for number, text in enumerate(inputs):
        path = Path(text)
        if not path.exists():
            raise DataError(f"inputs[{number}]: no such file or directory", str(path))
        if path.resolve() == out.resolve():
            raise ConfigError(f"inputs[{number}]: '{path}' is the output directory (out=...)")
        if path.is_file():
            if not path.name.endswith(DATASET_SUFFIXES):
                raise ConfigError(f"inputs[{number}]: '{path}' is not a .jsonl or .jsonl.zst dataset file")
            files.add(path.resolve())
            continue
        where = path / "data" if (path / "data").is_dir() else path
        found = [
            p
            for p in where.iterdir()
            if p.is_file() and p.name.endswith(DATASET_SUFFIXES) and not p.name.startswith(".")
        ]
        if not found:
            raise DataError(
                f"inputs[{number}]: no dataset files (*.jsonl, *.jsonl.zst) in {where}", str(path)
            )
        files.update(p.resolve() for p in found)
    return sorted(files, key=str)


def read_lines(path: Path) -> Iterator[bytes]:
    if path.name.endswith(".zst"):
        import zstandard

        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            yield from io.BufferedReader(reader)
    else:
        with open(path, "rb") as handle:
            yield from handle


def records(files: list[Path]) -> Iterator[tuple[int, int, bytes, dict[str, Any]]]:
    """``(file number, line number, line, record)`` for every non-empty line, in file order."""
    for number, path in enumerate(files):
        for line_number, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg})", str(path), line_number) from None
            task = record.get("task") if isinstance(record, dict) else None
            if not (
                isinstance(task, dict)
                and "id" in task
                and "id" in record
                and isinstance(record.get("messages"), list)
            ):
                raise DataError(
                    "not a trajectory record (needs id, task.id and messages)", str(path), line_number
                )
            yield number, line_number, line.rstrip(b"\n"), record


def _h64(text: str | bytes) -> int:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Index:
    """One fixed-size row per trajectory, in columns (``array``), filled while streaming."""

    def __init__(self, bands: int):
        self.task, self.sample, self.id, self.line = array("Q"), array("Q"), array("Q"), array("Q")
        self.digest_hi, self.digest_lo = array("Q"), array("Q")
        self.file = array("I")
        self.code = array("B")
        self.bands = [array("Q") for _ in range(bands)]
        self.notes: dict[int, str] = {}
        """Row -> why it was dropped, for drops that need more than a code (contamination)."""

    def __len__(self) -> int:
        return len(self.code)

    def nbytes(self) -> int:
        columns = [
            self.task,
            self.sample,
            self.id,
            self.line,
            self.digest_hi,
            self.digest_lo,
            self.file,
            self.code,
            *self.bands,
        ]
        return sum(c.itemsize * len(c) for c in columns)


def scan(files: list[Path], cfg: CurateConfig, decontam: DecontamIndex | None, progress=None) -> Index:
    """Pass 1: hash every record; contamination is decided here, per record."""
    dedup = cfg.curation.dedup
    signature: Callable[[str], Any] | None = None
    bands = rows = 0
    if dedup.near:
        from datasketch import MinHash
        from datasketch.lsh import _optimal_param

        bands, rows = _optimal_param(dedup.threshold, dedup.num_perm, 0.5, 0.5)
        template = MinHash(num_perm=dedup.num_perm, seed=1)

        def minhash_signature(text: str):
            # crc32 instead of datasketch's default sha1: the same estimator, ~10x less time per shingle
            minhash = MinHash(
                num_perm=dedup.num_perm,
                hashfunc=zlib.crc32,
                permutations=template.permutations,
                # datasketch types the attribute str and the parameter a Literal of the same values
                scheme=template.scheme,  # pyright: ignore[reportArgumentType]
            )
            minhash.update_batch(shingles(text, dedup.shingle))
            return minhash.hashvalues

        signature = minhash_signature

    index = Index(bands)
    for number, _, line, record in records(files):
        text = record_text(record["messages"])
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        meta = record.get("meta") or {}
        index.task.append(_h64(str(record["task"]["id"])))
        index.sample.append(int(meta.get("sample", 0)) & (2**64 - 1))
        index.id.append(_h64(str(record["id"])))
        index.line.append(_h64(line))
        index.digest_hi.append(int.from_bytes(digest[:8], "big"))
        index.digest_lo.append(int.from_bytes(digest[8:16], "big"))
        index.file.append(number)
        code = KEEP
        if decontam is not None and len(decontam):
            hit = decontam.match(text)
            if hit is not None:
                code = CONTAMINATED
                index.notes[len(index.code)] = f"contaminated: {hit[1]:.0%} of {hit[0]}"
        index.code.append(code)
        if signature is not None:
            values = signature(text)
            for band in range(bands):
                index.bands[band].append(_h64(values[band * rows : (band + 1) * rows].tobytes()))
        if progress is not None:
            progress()
    return index


def decide(index: Index, cfg: CurateConfig) -> dict[int, int]:
    """Pass over the index: exact duplicates, near duplicates, per-task caps, each keeping the lowest rank.

    Returns row -> the row it duplicates (for the manifest's ``dropped`` file)."""
    import numpy as np

    n = len(index)
    if not n:
        return {}
    code = np.frombuffer(index.code, dtype=np.uint8).copy()
    col = {
        name: np.frombuffer(getattr(index, name), dtype=np.uint64)
        for name in ("task", "sample", "id", "line", "digest_hi", "digest_lo")
    }
    # rank: the canonical order, from content alone (lexsort takes its primary key last)
    order = np.lexsort(
        (col["line"], col["digest_lo"], col["digest_hi"], col["id"], col["sample"], col["task"])
    )
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    of: dict[int, int] = {}

    live = code == KEEP
    if cfg.curation.dedup.exact:
        rows = np.nonzero(live)[0]
        rows = rows[np.lexsort((rank[rows], col["digest_lo"][rows], col["digest_hi"][rows]))]
        if len(rows) > 1:
            hi, lo = col["digest_hi"][rows], col["digest_lo"][rows]
            starts = np.concatenate(([True], (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])))
            winners = rows[np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))]
            duplicates = ~starts
            code[rows[duplicates]] = EXACT
            of.update(zip(rows[duplicates].tolist(), winners[duplicates].tolist(), strict=True))
        live = code == KEEP

    if index.bands:
        involved = np.zeros(n, dtype=bool)
        for band in index.bands:
            values = np.frombuffer(band, dtype=np.uint64)
            rows = np.nonzero(live)[0]
            _, inverse, counts = np.unique(values[rows], return_inverse=True, return_counts=True)
            involved[rows[counts[inverse] > 1]] = True
        # Only records that share a bucket with another can be or block a near duplicate: a greedy
        # pass over them, in rank order, is the same as one over everything.
        candidates = np.nonzero(involved)[0]
        candidates = candidates[np.argsort(rank[candidates])]
        owner: dict[tuple[int, int], int] = {}
        band_values = [np.frombuffer(band, dtype=np.uint64) for band in index.bands]
        for row in candidates.tolist():
            keys = [(b, int(values[row])) for b, values in enumerate(band_values)]
            hit = next((owner[k] for k in keys if k in owner), None)
            if hit is not None:
                code[row] = NEAR
                of[row] = hit
                continue
            for key in keys:
                owner[key] = row
        live = code == KEEP

    cap = cfg.curation.max_per_task
    if cap is not None:
        rows = np.nonzero(live)[0]
        rows = rows[np.lexsort((rank[rows], col["task"][rows]))]
        tasks = col["task"][rows]
        starts = np.concatenate(([True], tasks[1:] != tasks[:-1])) if len(rows) else np.zeros(0, dtype=bool)
        group_start = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0)) if len(rows) else rows
        within = np.arange(len(rows)) - group_start
        code[rows[within >= cap]] = CAP
    index.code = array("B", code.tobytes())
    return of


def decontam_index(cfg: CurateConfig) -> DecontamIndex | None:
    from agentkit.config import EnvConfig
    from agentkit.env import build_env

    decontam = cfg.curation.decontam
    if not decontam.sources:
        return None
    task_sets = []
    for number, source in enumerate(decontam.sources):
        if not source.env:
            raise ConfigError(
                f"curation.decontam.sources[{number}].env: name the env whose loader reads the "
                f"evaluation tasks (agentkit curate has no env of its own)"
            )
        import asyncio

        loader = build_env(EnvConfig(name=source.env))
        try:
            task_sets.append(loader.load_tasks(source.tasks))
        except NotImplementedError as exc:
            raise ConfigError(f"curation.decontam.sources[{number}]: {exc}") from None
        finally:
            asyncio.run(loader.aclose())
    try:
        return decontam_index_from_tasks(task_sets, decontam.ngram, decontam.threshold)
    except ValueError as exc:
        raise ConfigError(f"curation.{exc}") from None


def curate_runs(cfg: CurateConfig) -> int:
    """The ``agentkit curate`` command."""
    started = time.perf_counter()
    out = Path(cfg.out)
    files = dataset_files(list(cfg.inputs), out)
    target = RunDir(out, kind="curate")
    if target.manifest_path.exists() and not cfg.overwrite:
        raise ConfigError(f"out={out} already holds a curated dataset; pass overwrite=true to replace it")
    if cfg.curation.max_per_task is not None and cfg.curation.max_per_task < 1:
        raise ConfigError("curation.max_per_task must be >= 1 (or null)")
    decontam = decontam_index(cfg)
    print(
        f"agentkit curate: {len(files)} dataset file(s) from {len(cfg.inputs)} input(s) -> {out}", flush=True
    )

    from rich.progress import Progress

    with Progress(disable=not cfg.progress, transient=True) as bar:
        task = bar.add_task("curate: hashing", total=None)
        index = scan(files, cfg, decontam, progress=lambda: bar.advance(task))
    of = decide(index, cfg)
    total = len(index)
    index_bytes = index.nbytes()

    # Pass 2: ids for the manifest's dropped file, and the rows that show every field first (for Arrow).
    code = index.code
    ids: dict[int, str] = {}
    wanted = set(of.values()) | {row for row in range(total) if code[row] != KEEP}
    seen: set[tuple[str, str]] = set()
    front: list[bytes] = []
    front_rows: set[int] = set()
    for row, (_, _, line, record) in enumerate(records(files)):
        if row in wanted:
            ids[row] = str(record["id"])
        if code[row] == KEEP:
            pairs = structure(record)
            if pairs - seen:
                seen |= pairs
                front.append(line)
                front_rows.add(row)

    def kept_lines() -> Iterator[str]:
        yield from (line.decode("utf-8") for line in front)
        for row, (_, _, line, _) in enumerate(records(files)):  # pass 3
            if code[row] == KEEP and row not in front_rows:
                yield line.decode("utf-8")

    written = target.write_dataset(
        kept_lines(), compression=cfg.output.compression, rows_per_file=cfg.output.rows_per_file
    )
    dropped_counts: dict[str, int] = {}
    dropped_path = out / "dropped.jsonl"
    tmp = dropped_path.with_name(".dropped.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in range(total):
            if code[row] == KEEP:
                continue
            reason = REASONS[code[row]]
            dropped_counts[reason] = dropped_counts.get(reason, 0) + 1
            entry = {"id": ids[row], "reason": reason}
            if row in of:
                entry["duplicate_of"] = ids[of[row]]
            elif code[row] == CAP:
                entry["why"] = f"more than {cfg.curation.max_per_task} trajectories of its task"
            elif row in index.notes:
                entry["why"] = index.notes[row]
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
    tmp.replace(dropped_path)
    kept = total - sum(dropped_counts.values())
    manifest = {
        "kind": "curate",
        "schema_version": SCHEMA_VERSION,
        "agentkit": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "inputs": [{"path": str(p), "sha256": file_sha256(p)} for p in files],
        "counts": {"input": total, "kept": kept, "dropped": dict(sorted(dropped_counts.items()))},
        "dropped": dropped_path.name,
        "files": written,
        "index_bytes_per_trajectory": round(index_bytes / total, 1) if total else 0,
        "seconds": round(time.perf_counter() - started, 2),
    }
    target.write_manifest(manifest)
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(dropped_counts.items())) or "none"
    print(
        f"agentkit curate: {kept} of {total} trajectories kept ({dropped}) in {len(written)} file(s) under "
        f"{target.data_dir}; manifest: {target.manifest_path}"
    )
    return 0


def register() -> None:
    from agentkit.synth.config import register as register_synth

    register_synth()
