"""synth and eval as one pipeline: plan -> execute -> finish.

``plan`` checks the config, loads and shards the tasks, drops contaminated ones and works out which
content-addressed episodes are still to run in ``out/``. ``execute`` finds the model endpoints and
hands the pending episodes to an executor (``local``: asyncio in this process; ``ray``: actors across
a cluster); whatever runs them, finished episodes stream back to the one writer here, so resume, the
failures file and the live progress are the same. ``finish`` curates (synth) or scores (eval) the
raw rollouts and writes the manifest and the report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkit import __version__
from agentkit.config import EnvConfig
from agentkit.env import Env, build_env
from agentkit.errors import ConfigError, DataError
from agentkit.records import SCHEMA_VERSION, Provenance, Task, Trajectory
from agentkit.synth.config import EvalConfig, RunConfig, SynthConfig
from agentkit.synth.curate import (
    DecontamIndex,
    curate,
    curated_record,
    decontam_index_from_tasks,
    pass_rates,
    scan,
)
from agentkit.synth.executors import RolloutJob, build_executor
from agentkit.synth.metrics import bootstrap_interval, mean_pass_at_k, wilson_interval
from agentkit.synth.report import LiveProgress, print_summary, save_plots, summarize
from agentkit.synth.rollout import WorkItem, plan_work
from agentkit.synth.strategies import Strategy, build_strategy
from agentkit.synth.writer import RunDir, Shard, arrow_order, atomic_write_json, file_sha256

POLICIES = ("model", "reference")


# -- plan -------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What a run will do, decided before any server starts or any episode runs."""

    kind: str
    cfg: RunConfig
    env: Env
    strategy: Strategy
    needs_model: bool
    shard: Shard
    tasks: list[Task]
    total_tasks: int
    contaminated: list[str]
    index: DecontamIndex | None
    hashed: dict[str, Any]
    digest: str
    run_dir: RunDir
    items: list[WorkItem]
    pending: list[WorkItem]


def _resolve_task_shorthand(cfg: RunConfig) -> None:
    if not cfg.tasks:
        return
    path = Path(cfg.tasks)
    if not path.exists():
        raise DataError("no such file or directory (from tasks=...)", str(path))
    if path.is_dir():
        source = "hf"
    elif path.name.endswith((".jsonl", ".json", ".jsonl.gz", ".jsonl.zst")):
        source = "jsonl"
    elif path.suffix == ".parquet":
        source = "parquet"
    else:
        raise ConfigError(
            f"tasks: cannot tell the format of '{path}' (expected .jsonl, .parquet or a directory)"
        )
    cfg.env.tasks.source, cfg.env.tasks.path = source, str(path)


def check(kind: str, cfg: RunConfig) -> None:
    if kind not in FINISHERS:
        raise ConfigError(f"unknown run kind '{kind}' (expected one of {', '.join(FINISHERS)})")
    if cfg.policy not in POLICIES:
        raise ConfigError(f"policy: expected one of {', '.join(POLICIES)}, got '{cfg.policy}'")
    if cfg.n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {cfg.n_samples}")
    if cfg.concurrency < 0 or cfg.retries < 0 or cfg.retry_backoff < 0:
        raise ConfigError("concurrency, retries and retry_backoff must be >= 0")
    if isinstance(cfg, EvalConfig):
        bad = [k for k in cfg.ks if k < 1 or k > cfg.n_samples]
        if bad:
            raise ConfigError(f"ks: pass@k needs 1 <= k <= n_samples ({cfg.n_samples}); got {bad}")
        if not 0 < cfg.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {cfg.confidence}")


def load_tasks(env: Env, cfg: RunConfig) -> list[Task]:
    tasks = env.load_tasks(cfg.env.tasks)
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise DataError(
                f"duplicate task id '{task.id}' (ids address the work for resume)",
                cfg.env.tasks.path or f"env.tasks ({cfg.env.tasks.source})",
            )
        seen.add(task.id)
    if not tasks:
        raise ConfigError(
            f"env.tasks: the source gave no tasks ({cfg.env.tasks.source} {cfg.env.tasks.path or ''})"
        )
    return tasks


def decontam_index(cfg: SynthConfig, env: Env) -> DecontamIndex | None:
    decontam = cfg.curation.decontam
    if not decontam.sources:
        return None
    task_sets = []
    for number, source in enumerate(decontam.sources):
        if source.env is None or source.env == cfg.env.name:
            loader = env
        else:
            loader = build_env(EnvConfig(name=source.env, sandbox=cfg.env.sandbox))
        try:
            task_sets.append(loader.load_tasks(source.tasks))
        except NotImplementedError as exc:
            raise ConfigError(f"curation.decontam.sources[{number}]: {exc}") from None
        finally:
            if loader is not env:
                asyncio.run(loader.aclose())
    try:
        return decontam_index_from_tasks(task_sets, decontam.ngram, decontam.threshold)
    except ValueError as exc:
        raise ConfigError(f"curation.{exc}") from None


def hashed_config(cfg: RunConfig, needs_model: bool) -> dict[str, Any]:
    """The parts of the config that decide what a rollout produces (not where, how fast or how curated)."""
    full = dataclasses.asdict(cfg)
    env = full["env"]
    env["tasks"].pop("n", None)
    env["sandbox"].pop("pool_size", None)
    hashed = {
        "env": env,
        "policy": cfg.policy,
        "strategy": full["strategy"],
        "sampling": full["sampling"],
        "limits": full["limits"],
        "seed": cfg.seed,
    }
    if needs_model:
        hashed["model"] = {k: full["model"][k] for k in ("name", "path", "arch", "tokenizer")}
    return hashed


def config_sha256(hashed: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def plan(kind: str, cfg: RunConfig) -> Plan:
    """Check the config, load the tasks and decide the pending episodes. The caller closes ``plan.env``
    (``execute`` hands it to the executor, which does)."""
    check(kind, cfg)
    _resolve_task_shorthand(cfg)
    shard = Shard.parse(cfg.shard)
    build_executor(cfg.executor)  # an unknown executor fails here, before anything starts
    strategy = build_strategy(cfg.strategy.name, cfg.strategy.options)
    needs_model = cfg.policy == "model" and strategy.needs_model
    env = build_env(cfg.env)
    try:
        tasks = load_tasks(env, cfg)
        curating = isinstance(cfg, SynthConfig) and cfg.curation.enabled
        index = decontam_index(cfg, env) if isinstance(cfg, SynthConfig) and curating else None
        total_tasks = len(tasks)
        tasks = [t for t in tasks if shard.owns(t.id)]
        contaminated = [t.id for t in tasks if index is not None and index.match(t.prompt)]
        if contaminated:
            tasks = [t for t in tasks if t.id not in set(contaminated)]
        hashed = hashed_config(cfg, needs_model)
        digest = config_sha256(hashed)
        run_dir = RunDir(cfg.out, shard, kind=kind, fsync=cfg.output.fsync)
        finished = run_dir.prepare(dataclasses.asdict(cfg), hashed, digest, cfg.resume)
        items = plan_work(tasks, cfg.n_samples, digest, cfg.seed)
    except BaseException:
        asyncio.run(env.aclose())
        raise
    pending = [item for item in items if item.key not in finished]
    return Plan(
        kind=kind,
        cfg=cfg,
        env=env,
        strategy=strategy,
        needs_model=needs_model,
        shard=shard,
        tasks=tasks,
        total_tasks=total_tasks,
        contaminated=contaminated,
        index=index,
        hashed=hashed,
        digest=digest,
        run_dir=run_dir,
        items=items,
        pending=pending,
    )


# -- execute ----------------------------------------------------------------------------------------
def probe_endpoints(urls: list[str], model: str, api_key: str | None, timeout: float) -> str | None:
    """Fail fast on an endpoint that cannot serve; return the chat-template hash it advertises."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    template_sha = None
    for url in urls:
        try:
            response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=min(timeout, 10.0))
        except httpx.HTTPError as exc:
            raise ConfigError(f"model.base_url: cannot reach {url} ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise ConfigError(f"model.base_url: {url}/models answered HTTP {response.status_code}")
        try:
            served = response.json().get("data", [])
        except ValueError:
            raise ConfigError(
                f"model.base_url: {url}/models did not answer JSON (is it an OpenAI API?)"
            ) from None
        ids = [entry.get("id") for entry in served]
        entry = next((e for e in served if e.get("id") == model), None)
        if entry is None and ids:
            raise ConfigError(
                f"model.name: '{model}' is not served at {url} (it serves: {', '.join(map(str, ids))})"
            )
        from agentkit.openai_client import served_template_sha256

        template_sha = template_sha or served_template_sha256(entry)
    return template_sha


def auto_concurrency(cfg: RunConfig, needs_model: bool, endpoints: int) -> int:
    """Sized by the sandbox pool and, with a model, by what the endpoints accept."""
    if cfg.concurrency:
        return cfg.concurrency
    bound = max(1, cfg.env.sandbox.pool_size)
    if needs_model:
        bound = min(bound, max(1, endpoints * cfg.model.max_concurrency))
    return bound


class ResultSink:
    """Where executors deliver finished episodes: the raw shard, the failures file and the progress bar.

    Every executor calls it from this process only, so there is one writer however many machines run
    the episodes.
    """

    def __init__(self, run_dir: RunDir, progress: LiveProgress):
        self.run_dir, self.progress = run_dir, progress

    def trajectory(self, record: Trajectory | dict[str, Any], passed: bool, turns: int) -> None:
        self.run_dir.write_trajectory(record)
        self.progress.trajectory(passed, turns)

    def failure(self, failure: dict[str, Any]) -> None:
        self.run_dir.write_failure(failure)
        self.progress.failure()

    def retry(self) -> None:
        self.progress.retry()


@dataclass
class Execution:
    new_trajectories: int = 0
    new_turns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def execute(p: Plan) -> Execution:
    """Start or probe the model endpoints and run the pending episodes with the configured executor."""
    cfg = p.cfg
    executor = build_executor(cfg.executor)
    handed_over = False
    try:
        with ExitStack() as stack:
            urls: list[str] = []
            endpoint = "reference"
            template_sha = None
            if p.needs_model and p.pending:
                if cfg.model.base_url:
                    urls = [u.strip() for u in cfg.model.base_url.split(",") if u.strip()]
                    endpoint = "openai-compatible"
                else:
                    from agentkit.server.launch import embedded_server

                    urls = [stack.enter_context(embedded_server(cfg.model, port=0))]
                    endpoint = "embedded"
                template_sha = probe_endpoints(urls, cfg.model.name, cfg.model.api_key, cfg.model.timeout)
            concurrency = auto_concurrency(cfg, p.needs_model, len(urls))
            provenance = Provenance(
                model=cfg.model.name if p.needs_model else "",
                endpoint=endpoint if p.needs_model else "",
                strategy=p.strategy.name,
                chat_template_sha256=template_sha,
                env_version=f"{p.env.name}/{p.env.version}",
                verifier=str(getattr(p.env, "verifier_version", "")),
                agentkit=__version__,
                config_sha256=p.digest,
            )
            done = len(p.items) - len(p.pending)
            print(
                f"agentkit {p.kind}: env={p.env.name} tasks={len(p.tasks)}"
                + (
                    f" (shard {p.shard.index}/{p.shard.count} of {p.total_tasks})"
                    if p.shard.count > 1
                    else ""
                )
                + (f" ({len(p.contaminated)} contaminated tasks skipped)" if p.contaminated else "")
                + f" x {cfg.n_samples} samples = {len(p.items)} episodes, {done} already done;"
                + f" strategy={p.strategy.name} policy={cfg.policy}"
                + (f" endpoint={endpoint} ({', '.join(urls)})" if p.needs_model and urls else "")
                + f" concurrency={concurrency} executor={executor.name} out={cfg.out}",
                flush=True,
            )
            job = RolloutJob(
                env=cfg.env,
                strategy=cfg.strategy,
                needs_model=p.needs_model,
                urls=urls,
                model=cfg.model,
                sampling=cfg.sampling,
                limits=cfg.limits,
                provenance=provenance,
                concurrency=concurrency,
                retries=cfg.retries,
                retry_backoff=cfg.retry_backoff,
                return_token_ids=cfg.record.tokens,
            )
            progress = LiveProgress(
                len(p.items), f"{p.kind} {p.env.name}", enabled=cfg.report.progress, already=done
            )
            handed_over = True
            try:
                with progress:
                    extra = (
                        executor.run(job, p.pending, ResultSink(p.run_dir, progress), p.env)
                        if p.pending
                        else {}
                    )
                    if not p.pending:
                        asyncio.run(p.env.aclose())
            finally:
                p.run_dir.close()
    finally:
        if not handed_over:
            asyncio.run(p.env.aclose())
    return Execution(new_trajectories=progress.done, new_turns=progress.turns, extra=extra or {})


# -- finish -----------------------------------------------------------------------------------------
def _save_report(run_dir: RunDir, summary: dict[str, Any], entries, rates, plots: bool) -> list[Path]:
    paths = save_plots(summary, entries, rates, run_dir.plots_dir) if plots else []
    summary["plots"] = [str(p.relative_to(run_dir.root)) for p in paths]
    atomic_write_json(run_dir.report_path, summary)
    return paths


def _manifest(
    kind: str, cfg: RunConfig, run_dir: RunDir, digest: str, counts: dict[str, Any]
) -> dict[str, Any]:
    raw = run_dir.raw_path
    return {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "agentkit": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_sha256": digest,
        "config": dataclasses.asdict(cfg),
        "shard": {"index": run_dir.shard.index, "count": run_dir.shard.count},
        "complete": counts["failures"] == 0 and counts["episodes_finished"] == counts["episodes_planned"],
        "counts": counts,
        "raw": {"path": str(raw.relative_to(run_dir.root)), "sha256": file_sha256(raw)}
        if raw.exists()
        else None,
        "report": str(run_dir.report_path.relative_to(run_dir.root)),
    }


@dataclass
class Outcome:
    """What ``finish`` hands its kind-specific step: the rollouts of this plan and their counts."""

    rollouts: Any
    counts: dict[str, Any]
    failures: list[dict[str, Any]]
    wall: float
    common: dict[str, int]


def finish(p: Plan, execution: Execution, started: float) -> None:
    """Read back what this plan's episodes wrote, then curate (synth) or score (eval) it."""
    planned = {item.key for item in p.items}
    finished = p.run_dir.finished_keys()
    failures = [f for f in p.run_dir.current_failures(finished) if f["key"] in planned]
    counts = {
        "tasks": len(p.tasks),
        "tasks_in_source": p.total_tasks,
        "tasks_contaminated": len(p.contaminated),
        "episodes_planned": len(p.items),
        "episodes_finished": len(finished & planned),
        "failures": len(failures),
        "executor": p.cfg.executor.name,
    }
    if execution.extra:
        counts["execution"] = execution.extra
    rollouts = (
        (offset, record)
        for offset, record in p.run_dir.iter_raw()
        if record.get("meta", {}).get("key") in planned
    )
    outcome = Outcome(
        rollouts=rollouts,
        counts=counts,
        failures=failures,
        wall=time.perf_counter() - started,
        common={"new_trajectories": execution.new_trajectories, "new_turns": execution.new_turns},
    )
    FINISHERS[p.kind](p, outcome)
    if failures:
        print(
            f"agentkit {p.kind}: {len(failures)} episode(s) failed on infrastructure after {p.cfg.retries} "
            f"retries (see {p.run_dir.failures_path}); rerun the same command to retry them",
            file=sys.stderr,
        )


def finish_synth(p: Plan, o: Outcome) -> None:
    cfg, run_dir, strategy = p.cfg, p.run_dir, p.strategy
    assert isinstance(cfg, SynthConfig)
    entries = scan(o.rollouts, cfg.curation, strategy, p.index, where=str(run_dir.raw_path))
    result = curate(entries, cfg.curation, strategy)
    kept = sorted(result.kept, key=lambda e: (e.task_id, e.sample, e.id))
    with ExitStack() as stack:
        raw = stack.enter_context(open(run_dir.raw_path, "rb")) if kept else None

        def record(entry):
            assert raw is not None  # opened whenever there is an entry to read
            raw.seek(entry.offset)
            return curated_record(raw.readline(), entry, result.pass_rates)

        order = arrow_order(record(entry) for entry in kept)
        lines = (json.dumps(record(kept[i]), ensure_ascii=False, separators=(",", ":")) for i in order)
        files = run_dir.write_dataset(
            lines, compression=cfg.output.compression, rows_per_file=cfg.output.rows_per_file
        )
    counts = o.counts | {
        "rollouts": len(entries),
        "curated": len(result.kept),
        "dropped": dict(sorted(result.dropped.items())),
    }
    summary = summarize(entries, o.failures, wall_seconds=o.wall, **o.common)
    summary["curation"] = {"kept": len(result.kept), "dropped": counts["dropped"]}
    summary["abilities"] = dict(sorted(Counter(a for e in result.kept for a in e.abilities).items()))
    _save_report(run_dir, summary, entries, result.pass_rates, cfg.report.plots)
    manifest = _manifest("synth", cfg, run_dir, p.digest, counts) | {
        "files": files,
        "strategy": strategy.name,
    }
    run_dir.write_manifest(manifest)
    dropped = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items()) or "none"
    abilities = ", ".join(f"{k} {v}" for k, v in summary["abilities"].items()) or "untagged"
    print_summary(
        summary,
        f"agentkit synth: {run_dir.root}",
        {
            "dataset": f"{len(result.kept)} of {len(entries)} trajectories kept in {len(files)} file(s) "
            f"under {run_dir.data_dir}",
            "dropped": dropped,
            "abilities (kept)": abilities,
        },
    )
    print(
        f"dataset: {len(result.kept)} trajectories -> {run_dir.data_dir}; manifest: {run_dir.manifest_path}; "
        f"report: {run_dir.report_path}"
    )
    if p.shard.count > 1 and cfg.curation.enabled:
        curate_shards(p)


def curate_shards(p: Plan) -> None:
    """Once every shard of ``out`` has finished, curate across them into ``out/merged`` (dedup across
    shards, per-task caps over the whole); until then, say how many are still to come."""
    from agentkit.synth.config import CurateConfig, DecontamConfig
    from agentkit.synth.merge import curate_runs

    count = p.shard.count
    manifests = [p.run_dir.root / f"manifest{Shard(i, count).tag}.json" for i in range(count)]
    done = [json.loads(m.read_text()) for m in manifests if m.exists()]
    if len(done) < count or not all(m.get("complete") for m in done):
        print(
            f"cross-shard curation: {count - sum(bool(m.get('complete')) for m in done)} of {count} shards "
            f"still to finish; it runs when the last one does (or: agentkit curate {p.run_dir.root} "
            f"out={p.run_dir.root / 'merged'})"
        )
        return
    files = [str(p.run_dir.root / f["path"]) for m in done for f in m.get("files", []) if f.get("rows")]
    if not files:
        return
    # Decontamination already ran in every shard, against sources this run's env resolves.
    assert isinstance(p.cfg, SynthConfig)
    curation = dataclasses.replace(p.cfg.curation, decontam=DecontamConfig())
    curate_runs(
        CurateConfig(
            inputs=files,
            out=str(p.run_dir.root / "merged"),
            curation=curation,
            output=p.cfg.output,
            overwrite=True,
            progress=p.cfg.report.progress,
        )
    )


def eval_metrics(entries, ks: list[int], confidence: float, resamples: int, seed: int) -> dict[str, Any]:
    """pass@1 with a Wilson interval over samples, and pass@k with bootstrap intervals over tasks."""
    rates = pass_rates(entries)
    counts = [(samples, passed) for passed, samples in rates.values()]
    samples = sum(n for n, _ in counts)
    passed = sum(c for _, c in counts)
    metrics: dict[str, Any] = {"tasks": len(counts), "samples": samples, "passed": passed}
    low, high = wilson_interval(passed, samples, confidence)
    metrics["wilson"] = {"confidence": confidence, "pass@1": [round(low, 4), round(high, 4)]}
    usable = [k for k in sorted(set(ks) | {1}) if counts and all(n >= k for n, _ in counts)]
    metrics["skipped_ks"] = [k for k in ks if k not in usable]
    for k in usable:
        value = mean_pass_at_k(counts, k)
        entry: dict[str, Any] = {"value": round(value, 4)}
        if resamples:
            lo, hi = bootstrap_interval(counts, k, confidence=confidence, resamples=resamples, seed=seed)
            entry["bootstrap"] = [round(lo, 4), round(hi, 4)]
        metrics[f"pass@{k}"] = entry
    return metrics


def finish_eval(p: Plan, o: Outcome) -> None:
    cfg, run_dir = p.cfg, p.run_dir
    assert isinstance(cfg, EvalConfig)
    entries = scan(o.rollouts, None, p.strategy, None, where=str(run_dir.raw_path))
    metrics = eval_metrics(entries, cfg.ks, cfg.confidence, cfg.bootstrap, cfg.seed)
    per_task: dict[str, dict[str, Any]] = {}
    for entry in entries:
        row = per_task.setdefault(
            entry.task_id, {"task": entry.task_id, "samples": 0, "passed": 0, "status": {}}
        )
        row["samples"] += 1
        row["passed"] += int(entry.passed)
        row["status"][entry.status] = row["status"].get(entry.status, 0) + 1
    for row in per_task.values():
        row["pass@1"] = round(row["passed"] / row["samples"], 4)
    summary = summarize(entries, o.failures, wall_seconds=o.wall, **o.common)
    summary["metrics"] = metrics
    summary["per_task"] = [per_task[k] for k in sorted(per_task)]
    _save_report(run_dir, summary, entries, pass_rates(entries), cfg.report.plots)
    run_dir.write_manifest(_manifest("eval", cfg, run_dir, p.digest, o.counts | {"rollouts": len(entries)}))
    extra = {}
    for key, value in metrics.items():
        if key.startswith("pass@"):
            interval = value.get("bootstrap")
            extra[key] = f"{value['value']:.4f}" + (
                f"  bootstrap {cfg.confidence:.0%} CI [{interval[0]:.4f}, {interval[1]:.4f}]"
                if interval
                else ""
            )
    print_summary(summary, f"agentkit eval: {run_dir.root}", extra)
    for key, value in metrics.items():
        if key.startswith("pass@"):
            print(f"{key}: {value['value']:.4f}")
    print(f"report: {run_dir.report_path}")


FINISHERS: dict[str, Callable[[Plan, Outcome], None]] = {"synth": finish_synth, "eval": finish_eval}


def run(kind: str, cfg: RunConfig) -> int:
    """plan -> execute -> finish; returns the exit code (errors are raised as AgentkitError)."""
    started = time.perf_counter()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the report
    p = plan(kind, cfg)
    execution = execute(p)
    finish(p, execution, started)
    return 0
