"""``agentkit view runs/a [runs/b]``: a run's trajectories in the browser (FastAPI + one static page).

Opening a run reads its JSONL once, line by line, into an index of byte offsets and the few fields the
table filters on (status, verdict, strategy, env, family, length...); the index is cached next to the
run (``.agentkit-view/``) and rebuilt only when a file changed. The table is served a page at a time
and a trajectory is read from disk by its offset when it is opened, so a 100k-trajectory run never
sits in memory or in the browser whole. Plots (``agentkit.synth.report.family_plots``) are drawn
from the index. With two runs, a task's trajectories can be compared side by side.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError, DataError

INDEX_VERSION = 2


@dataclass
class ViewConfig:
    """``agentkit view runs/a runs/b port=8765``."""

    runs: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8765
    source: str = "raw"
    """``raw``: every episode of the run; ``data``: the curated dataset."""
    open_browser: bool = False


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="view_schema", node=ViewConfig)


def rewrite_args(args: list[str]) -> list[str]:
    """Bare paths (``agentkit view runs/a runs/b``) become ``runs=[...]``."""
    from agentkit.cli import bare_paths_to_list

    return bare_paths_to_list(args, "runs")


def _summary(record: dict[str, Any], file_index: int, offset: int, length: int) -> dict[str, Any]:
    from agentkit.synth.export import abilities, family

    task = record.get("task") or {}
    verdict = record.get("verdict") or {}
    stats = record.get("stats") or {}
    provenance = record.get("provenance") or {}
    chars = sum(len(m.get("content") or "") for m in record.get("messages") or [])
    return {
        "f": file_index,
        "o": offset,
        "n": length,
        "id": record.get("id", ""),
        "task_id": task.get("id", ""),
        "env": task.get("env", ""),
        "family": family(record),
        "abilities": abilities(record),
        "status": record.get("status", ""),
        "passed": verdict.get("passed") if verdict else None,
        "reward": record.get("reward"),
        "strategy": provenance.get("strategy", ""),
        "turns": stats.get("turns", 0),
        "tool_calls": stats.get("tool_calls", 0),
        "tool_errors": stats.get("tool_errors", 0),
        "prompt_tokens": stats.get("prompt_tokens", 0),
        "completion_tokens": stats.get("completion_tokens", 0),
        "chars": chars,
        "seconds": stats.get("seconds") or {},
        "reason": (verdict.get("reason") or record.get("error") or "")[:160],
    }


class RunIndex:
    """Byte offsets and filter fields of every trajectory in one run."""

    def __init__(self, path: str | os.PathLike, *, source: str = "raw", cache: bool = True):
        from agentkit.synth.export import run_files

        self.path = Path(path)
        self.name = self.path.name if self.path.is_dir() else self.path.stem
        self.files = run_files(self.path, source)
        if any(f.suffix == ".zst" for f in self.files):
            raise ConfigError(
                f"runs: {self.path} holds zstd-compressed shards; view reads plain JSONL "
                "(use source=raw, or decompress)"
            )
        self.rows: list[dict[str, Any]] = []
        self.cache_dir = (self.path if self.path.is_dir() else self.path.parent) / ".agentkit-view"
        if not (cache and self._load_cache()):
            self._scan()
            if cache:
                self._save_cache()

    def _stamp(self) -> list[list[Any]]:
        return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in self.files]

    def _cache_paths(self) -> tuple[Path, Path]:
        return self.cache_dir / f"index-{self.name}.jsonl", self.cache_dir / f"index-{self.name}.json"

    def _load_cache(self) -> bool:
        rows_path, meta_path = self._cache_paths()
        try:
            meta = json.loads(meta_path.read_text())
            if meta != {"version": INDEX_VERSION, "files": self._stamp()}:
                return False
            with open(rows_path, encoding="utf-8") as handle:
                self.rows = [json.loads(line) for line in handle]
            return True
        except (OSError, ValueError):
            return False

    def _save_cache(self) -> None:
        rows_path, meta_path = self._cache_paths()
        try:
            self.cache_dir.mkdir(exist_ok=True)
            with open(rows_path, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in self.rows)
            meta_path.write_text(json.dumps({"version": INDEX_VERSION, "files": self._stamp()}))
        except OSError:
            pass  # a read-only run is indexed again next time

    def _scan(self) -> None:
        for file_index, path in enumerate(self.files):
            offset = 0
            with open(path, "rb") as handle:
                for number, line in enumerate(handle, start=1):
                    start, offset = offset, offset + len(line)
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        if not line.endswith(b"\n"):
                            break  # a torn tail: the run is still being written
                        raise DataError("invalid JSON line", str(path), number) from None
                    self.rows.append(_summary(record, file_index, start, len(line)))

    def read(self, index: int) -> dict[str, Any]:
        """The full trajectory ``index``, read by its offset."""
        if not 0 <= index < len(self.rows):
            raise KeyError(index)
        row = self.rows[index]
        with open(self.files[row["f"]], "rb") as handle:
            handle.seek(row["o"])
            return json.loads(handle.read(row["n"]))

    def plots(self) -> list[Path]:
        """The run's plots, drawn from the index (cached with it)."""
        from agentkit.synth.report import PLOT_FILES, family_plots

        out = self.cache_dir / f"plots-{self.name}"
        stamp = out / "stamp.json"
        current = json.dumps(self._stamp())
        if stamp.exists() and stamp.read_text() == current and all((out / p).exists() for p in PLOT_FILES):
            return [out / p for p in PLOT_FILES]
        paths = family_plots(self.rows, out, title=self.name)
        stamp.write_text(current)
        return paths


FILTER_KEYS = ("status", "verdict", "strategy", "env", "family", "ability")


def _matches(
    row: dict[str, Any], filters: dict[str, str], min_len: int | None, max_len: int | None, query: str
) -> bool:
    for key in FILTER_KEYS:
        wanted = filters.get(key)
        if not wanted:
            continue
        if key == "verdict":
            value = "none" if row["passed"] is None else ("passed" if row["passed"] else "failed")
        elif key == "ability":
            if wanted not in row.get("abilities", ()):
                return False
            continue
        else:
            value = row[key]
        if value != wanted:
            return False
    if min_len is not None and row["turns"] < min_len:
        return False
    if max_len is not None and row["turns"] > max_len:
        return False
    if query and query not in row["id"].lower() and query not in row["reason"].lower():
        return False
    return True


def create_view_app(indexes: list[RunIndex]):
    """The FastAPI app: the page, a paged table API, one trajectory by index, plots, comparisons."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse

    from agentkit.synth.view_page import PAGE

    app = FastAPI(title="agentkit view", docs_url=None, redoc_url=None, openapi_url=None)

    def run_at(run: int) -> RunIndex:
        if not 0 <= run < len(indexes):
            raise HTTPException(404, f"no run {run} (this viewer has {len(indexes)})")
        return indexes[run]

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE

    @app.get("/api/runs")
    async def runs():
        out = []
        for number, index in enumerate(indexes):
            facets = {
                key: sorted({str(r[key]) for r in index.rows})
                for key in ("status", "strategy", "env", "family")
            }
            facets["ability"] = sorted({a for r in index.rows for a in r.get("abilities", ())})
            judged = [r for r in index.rows if r["passed"] is not None]
            out.append(
                {
                    "run": number,
                    "name": index.name,
                    "path": str(index.path),
                    "trajectories": len(index.rows),
                    "passed": sum(bool(r["passed"]) for r in judged),
                    "judged": len(judged),
                    "facets": facets,
                }
            )
        return out

    @app.get("/api/trajectories")
    async def trajectories(
        run: int = 0,
        page: int = Query(0, ge=0),
        size: int = Query(50, ge=1, le=500),
        status: str = "",
        verdict: str = "",
        strategy: str = "",
        env: str = "",
        family: str = "",
        ability: str = "",
        min_turns: int | None = None,
        max_turns: int | None = None,
        q: str = "",
        sort: str = "",
    ):
        index = run_at(run)
        filters = {
            "status": status,
            "verdict": verdict,
            "strategy": strategy,
            "env": env,
            "family": family,
            "ability": ability,
        }
        hits = [
            i for i, row in enumerate(index.rows) if _matches(row, filters, min_turns, max_turns, q.lower())
        ]
        if sort.lstrip("-") in ("turns", "chars", "completion_tokens", "reward", "tool_errors"):
            key = sort.lstrip("-")
            hits.sort(key=lambda i: index.rows[i][key] or 0, reverse=sort.startswith("-"))
        chosen = hits[page * size : (page + 1) * size]
        rows = [
            {"i": i, **{k: v for k, v in index.rows[i].items() if k not in ("f", "o", "n")}} for i in chosen
        ]
        return {"total": len(hits), "page": page, "size": size, "rows": rows}

    @app.get("/api/trajectory")
    async def trajectory(run: int = 0, i: int = 0):
        index = run_at(run)
        try:
            return {"run": run, "i": i, "record": index.read(i)}
        except KeyError:
            raise HTTPException(404, f"run {run} has no trajectory {i}") from None

    @app.get("/api/compare")
    async def compare(task_id: str):
        columns = []
        for number, index in enumerate(indexes):
            hits = [i for i, row in enumerate(index.rows) if row["task_id"] == task_id][:4]
            columns.append(
                {
                    "run": number,
                    "name": index.name,
                    "trajectories": [{"i": i, "record": index.read(i)} for i in hits],
                }
            )
        return {"task_id": task_id, "columns": columns}

    @app.get("/api/plots")
    async def plots(run: int = 0):
        return [p.name for p in run_at(run).plots()]

    @app.get("/plots/{run}/{name}")
    async def plot(run: int, name: str):
        for path in run_at(run).plots():
            if path.name == name:
                return FileResponse(path, media_type="image/png")
        raise HTTPException(404, f"no plot {name}")

    return app


def open_runs(paths: list[str], source: str = "raw") -> list[RunIndex]:
    from rich.console import Console

    if not paths:
        raise ConfigError("runs: give one or more run directories (agentkit view runs/a [runs/b])")
    console = Console(stderr=True)
    indexes = []
    for path in paths:
        with console.status(f"indexing {path}"):
            index = RunIndex(path, source=source)
        console.print(f"{index.name}: {len(index.rows)} trajectories indexed from {len(index.files)} file(s)")
        indexes.append(index)
    return indexes


def view(cfg: ViewConfig) -> int:
    """Index the runs and serve the viewer until interrupted."""
    import uvicorn

    indexes = open_runs(list(cfg.runs), cfg.source)
    app = create_view_app(indexes)
    url = f"http://{cfg.host}:{cfg.port}/"
    print(f"agentkit view: {url} (Ctrl-C to stop)", flush=True)
    if cfg.open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0


__all__ = ["RunIndex", "ViewConfig", "create_view_app", "open_runs", "rewrite_args", "view"]
