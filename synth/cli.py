"""``agentkit synth`` and ``agentkit eval``: tasks + a policy -> verified rollouts -> a dataset or a score.

Both commands run the same resumable rollouts into ``out/``; synth then curates them into sharded
JSONL with a manifest, eval computes pass@k with confidence intervals. Bad input fails before any
server starts, with one line naming the key or the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkit import __version__
from agentkit.client import Sampling
from agentkit.config import EnvConfig
from agentkit.env import Env, build_env
from agentkit.errors import AgentkitError, ConfigError, DataError
from agentkit.loop import EpisodeLimits
from agentkit.records import SCHEMA_VERSION, Provenance, Task
from agentkit.synth.config import EvalConfig, RunConfig, SynthConfig
from agentkit.synth.curate import DecontamIndex, curate, curated_record, decontam_index_from_tasks, pass_rates, scan
from agentkit.synth.metrics import bootstrap_interval, mean_pass_at_k, wilson_interval
from agentkit.synth.report import LiveProgress, print_summary, save_plots, summarize
from agentkit.synth.rollout import RolloutEngine, env_policy, model_policy, plan_work
from agentkit.synth.strategies import Strategy, build_strategy
from agentkit.synth.writer import RunDir, Shard, arrow_order, atomic_write_json

POLICIES = ("model", "reference")


def synth(cfg: SynthConfig) -> int:
    """Synthesize a verified, curated trajectory dataset."""
    return _guarded("synth", cfg)


def evaluate(cfg: EvalConfig) -> int:
    """Evaluate a policy: pass@1, unbiased pass@k, confidence intervals, per-task results."""
    return _guarded("eval", cfg)


def _guarded(kind: str, cfg: RunConfig) -> int:
    try:
        return run(kind, cfg)
    except AgentkitError as exc:
        print(f"agentkit {kind}: error: {exc}", file=sys.stderr)
        return 2


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
        raise ConfigError(f"tasks: cannot tell the format of '{path}' (expected .jsonl, .parquet or a directory)")
    cfg.env.tasks.source, cfg.env.tasks.path = source, str(path)


def _check(kind: str, cfg: RunConfig) -> None:
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
            raise DataError(f"duplicate task id '{task.id}' (ids address the work for resume)",
                            cfg.env.tasks.path or f"env.tasks ({cfg.env.tasks.source})")
        seen.add(task.id)
    if not tasks:
        raise ConfigError(f"env.tasks: the source gave no tasks ({cfg.env.tasks.source} {cfg.env.tasks.path or ''})")
    return tasks


def decontam_index(cfg: SynthConfig, env: Env) -> DecontamIndex | None:
    decontam = cfg.curation.decontam
    if not decontam.sources:
        return None
    task_sets = []
    for number, source in enumerate(decontam.sources):
        own = source.env in (None, cfg.env.name)
        loader = env if own else build_env(EnvConfig(name=source.env, sandbox=cfg.env.sandbox))
        try:
            task_sets.append(loader.load_tasks(source.tasks))
        except NotImplementedError as exc:
            raise ConfigError(f"curation.decontam.sources[{number}]: {exc}") from None
        finally:
            if not own:
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
    hashed = {"env": env, "policy": cfg.policy, "strategy": full["strategy"], "sampling": full["sampling"],
              "limits": full["limits"], "seed": cfg.seed}
    if needs_model:
        hashed["model"] = {k: full["model"][k] for k in ("name", "path", "arch", "tokenizer")}
    return hashed


def config_sha256(hashed: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode("utf-8")).hexdigest()


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
            raise ConfigError(f"model.base_url: {url}/models did not answer JSON (is it an OpenAI API?)") from None
        ids = [entry.get("id") for entry in served]
        entry = next((e for e in served if e.get("id") == model), None)
        if entry is None and ids:
            raise ConfigError(f"model.name: '{model}' is not served at {url} (it serves: {', '.join(map(str, ids))})")
        template_sha = template_sha or (entry or {}).get("chat_template_sha256")
    return template_sha


def auto_concurrency(cfg: RunConfig, needs_model: bool, endpoints: int) -> int:
    """Sized by the sandbox pool and, with a model, by what the endpoints accept."""
    if cfg.concurrency:
        return cfg.concurrency
    bound = max(1, cfg.env.sandbox.pool_size)
    if needs_model:
        bound = min(bound, max(1, endpoints * cfg.model.max_concurrency))
    return bound


def run(kind: str, cfg: RunConfig) -> int:
    started = time.perf_counter()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the report
    _check(kind, cfg)
    _resolve_task_shorthand(cfg)
    shard = Shard.parse(cfg.shard)
    strategy = build_strategy(cfg.strategy.name, cfg.strategy.options)
    needs_model = cfg.policy == "model" and strategy.needs_model
    env = build_env(cfg.env)
    handed_over = False
    try:
        tasks = load_tasks(env, cfg)
        index = decontam_index(cfg, env) if isinstance(cfg, SynthConfig) and cfg.curation.enabled else None
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
        pending = [item for item in items if item.key not in finished]

        with ExitStack() as stack:
            urls: list[str] = []
            endpoint = "reference"
            template_sha = None
            if needs_model and pending:
                if cfg.model.base_url:
                    urls = [u.strip() for u in cfg.model.base_url.split(",") if u.strip()]
                    endpoint = "openai-compatible"
                else:
                    from agentkit.server.launch import embedded_server

                    urls = [stack.enter_context(embedded_server(cfg.model, port=0))]
                    endpoint = "embedded"
                template_sha = probe_endpoints(urls, cfg.model.name, cfg.model.api_key, cfg.model.timeout)
            concurrency = auto_concurrency(cfg, needs_model, len(urls))
            provenance = Provenance(model=cfg.model.name if needs_model else "",
                                    endpoint=endpoint if needs_model else "", strategy=strategy.name,
                                    chat_template_sha256=template_sha, env_version=f"{env.name}/{env.version}",
                                    verifier=str(getattr(env, "verifier_version", "")), agentkit=__version__,
                                    config_sha256=digest)
            print(f"agentkit {kind}: env={env.name} tasks={len(tasks)}"
                  + (f" (shard {shard.index}/{shard.count} of {total_tasks})" if shard.count > 1 else "")
                  + (f" ({len(contaminated)} contaminated tasks skipped)" if contaminated else "")
                  + f" x {cfg.n_samples} samples = {len(items)} episodes, {len(items) - len(pending)} already done;"
                  + f" strategy={strategy.name} policy={cfg.policy}"
                  + (f" endpoint={endpoint} ({', '.join(urls)})" if needs_model and urls else "")
                  + f" concurrency={concurrency} out={cfg.out}", flush=True)
            progress = LiveProgress(len(items), f"{kind} {env.name}", enabled=cfg.report.progress,
                                    already=len(items) - len(pending))
            handed_over = True
            try:
                with progress:
                    asyncio.run(_rollouts(cfg, env, strategy, pending, run_dir, progress, provenance, urls,
                                          needs_model, concurrency))
            finally:
                run_dir.close()
    finally:
        if not handed_over:
            asyncio.run(env.aclose())

    planned = {item.key for item in items}
    finished = run_dir.finished_keys()
    failures = [f for f in run_dir.current_failures(finished) if f["key"] in planned]
    wall = time.perf_counter() - started
    counts = {"tasks": len(tasks), "tasks_in_source": total_tasks, "tasks_contaminated": len(contaminated),
              "episodes_planned": len(items), "episodes_finished": len(finished & planned),
              "failures": len(failures)}
    common = {"new_trajectories": progress.done, "new_turns": progress.turns}
    rollouts = ((offset, record) for offset, record in run_dir.iter_raw()
                if record.get("meta", {}).get("key") in planned)
    if isinstance(cfg, SynthConfig):
        _finish_synth(cfg, run_dir, rollouts, strategy, index, counts, failures, wall, common, digest)
    else:
        _finish_eval(cfg, run_dir, rollouts, strategy, counts, failures, wall, common, digest)
    if failures:
        print(f"agentkit {kind}: {len(failures)} episode(s) failed on infrastructure after {cfg.retries} retries "
              f"(see {run_dir.failures_path}); rerun the same command to retry them", file=sys.stderr)
    return 0


async def _rollouts(cfg: RunConfig, env: Env, strategy: Strategy, items: list, run_dir: RunDir,
                    progress: LiveProgress, provenance: Provenance, urls: list[str], needs_model: bool,
                    concurrency: int) -> None:
    client = None
    try:
        if needs_model and items:
            from agentkit.openai_client import OpenAIClient

            client = OpenAIClient(urls, model=cfg.model.name, api_key=cfg.model.api_key, timeout=cfg.model.timeout,
                                  max_concurrency=cfg.model.max_concurrency, max_retries=cfg.model.max_retries)
        policy = model_policy(client) if client is not None else env_policy(env)

        def on_trajectory(trajectory, item) -> None:
            run_dir.write_trajectory(trajectory)
            progress.trajectory(trajectory.passed, trajectory.stats.turns)

        def on_failure(failure) -> None:
            run_dir.write_failure(failure.as_dict())
            progress.failure()

        engine = RolloutEngine(env, strategy, policy, sampling=Sampling(**dataclasses.asdict(cfg.sampling)),
                               limits=EpisodeLimits(**dataclasses.asdict(cfg.limits)), provenance=provenance,
                               concurrency=concurrency, retries=cfg.retries, retry_backoff=cfg.retry_backoff,
                               on_trajectory=on_trajectory, on_failure=on_failure,
                               on_retry=lambda item, error: progress.retry())
        await engine.run(items)
    finally:
        if client is not None:
            await client.aclose()
        await env.aclose()


def _save_report(run_dir: RunDir, summary: dict[str, Any], entries, rates, plots: bool) -> list[Path]:
    paths = save_plots(summary, entries, rates, run_dir.plots_dir) if plots else []
    summary["plots"] = [str(p.relative_to(run_dir.root)) for p in paths]
    atomic_write_json(run_dir.report_path, summary)
    return paths


def _manifest(kind: str, cfg: RunConfig, run_dir: RunDir, digest: str, counts: dict[str, Any]) -> dict[str, Any]:
    raw = run_dir.raw_path
    from agentkit.synth.writer import file_sha256

    return {"kind": kind, "schema_version": SCHEMA_VERSION, "agentkit": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "config_sha256": digest,
            "config": dataclasses.asdict(cfg), "shard": {"index": run_dir.shard.index, "count": run_dir.shard.count},
            "complete": counts["failures"] == 0 and counts["episodes_finished"] == counts["episodes_planned"],
            "counts": counts,
            "raw": {"path": str(raw.relative_to(run_dir.root)), "sha256": file_sha256(raw)} if raw.exists() else None,
            "report": str(run_dir.report_path.relative_to(run_dir.root))}


def _finish_synth(cfg: SynthConfig, run_dir: RunDir, rollouts, strategy: Strategy, index: DecontamIndex | None,
                  counts: dict[str, Any], failures: list, wall: float, common: dict[str, int], digest: str) -> None:
    entries = scan(rollouts, cfg.curation, strategy, index, where=str(run_dir.raw_path))
    result = curate(entries, cfg.curation, strategy)
    kept = sorted(result.kept, key=lambda e: (e.task_id, e.sample, e.id))
    with ExitStack() as stack:
        raw = stack.enter_context(open(run_dir.raw_path, "rb")) if kept else None

        def record(entry):
            raw.seek(entry.offset)
            return curated_record(raw.readline(), entry, result.pass_rates)

        order = arrow_order(record(entry) for entry in kept)
        lines = (json.dumps(record(kept[i]), ensure_ascii=False, separators=(",", ":")) for i in order)
        files = run_dir.write_dataset(lines, compression=cfg.output.compression,
                                      rows_per_file=cfg.output.rows_per_file)
    counts |= {"rollouts": len(entries), "curated": len(result.kept), "dropped": dict(sorted(result.dropped.items()))}
    summary = summarize(entries, failures, wall_seconds=wall, **common)
    summary["curation"] = {"kept": len(result.kept), "dropped": counts["dropped"]}
    _save_report(run_dir, summary, entries, result.pass_rates, cfg.report.plots)
    manifest = _manifest("synth", cfg, run_dir, digest, counts) | {"files": files, "strategy": strategy.name}
    run_dir.write_manifest(manifest)
    dropped = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items()) or "none"
    print_summary(summary, f"agentkit synth: {run_dir.root}",
                  {"dataset": f"{len(result.kept)} of {len(entries)} trajectories kept in {len(files)} file(s) "
                              f"under {run_dir.data_dir}", "dropped": dropped})
    print(f"dataset: {len(result.kept)} trajectories -> {run_dir.data_dir}; manifest: {run_dir.manifest_path}; "
          f"report: {run_dir.report_path}")


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
        entry = {"value": round(value, 4)}
        if resamples:
            lo, hi = bootstrap_interval(counts, k, confidence=confidence, resamples=resamples, seed=seed)
            entry["bootstrap"] = [round(lo, 4), round(hi, 4)]
        metrics[f"pass@{k}"] = entry
    return metrics


def _finish_eval(cfg: EvalConfig, run_dir: RunDir, rollouts, strategy: Strategy, counts: dict[str, Any],
                 failures: list, wall: float, common: dict[str, int], digest: str) -> None:
    entries = scan(rollouts, None, strategy, None, where=str(run_dir.raw_path))
    metrics = eval_metrics(entries, cfg.ks, cfg.confidence, cfg.bootstrap, cfg.seed)
    per_task: dict[str, dict[str, Any]] = {}
    for entry in entries:
        row = per_task.setdefault(entry.task_id, {"task": entry.task_id, "samples": 0, "passed": 0, "status": {}})
        row["samples"] += 1
        row["passed"] += int(entry.passed)
        row["status"][entry.status] = row["status"].get(entry.status, 0) + 1
    for row in per_task.values():
        row["pass@1"] = round(row["passed"] / row["samples"], 4)
    summary = summarize(entries, failures, wall_seconds=wall, **common)
    summary["metrics"] = metrics
    summary["per_task"] = [per_task[k] for k in sorted(per_task)]
    _save_report(run_dir, summary, entries, pass_rates(entries), cfg.report.plots)
    run_dir.write_manifest(_manifest("eval", cfg, run_dir, digest, counts | {"rollouts": len(entries)}))
    extra = {}
    for key, value in metrics.items():
        if key.startswith("pass@"):
            interval = value.get("bootstrap")
            extra[key] = f"{value['value']:.4f}" + (f"  bootstrap {cfg.confidence:.0%} CI [{interval[0]:.4f}, "
                                                     f"{interval[1]:.4f}]" if interval else "")
    print_summary(summary, f"agentkit eval: {run_dir.root}", extra)
    for key, value in metrics.items():
        if key.startswith("pass@"):
            print(f"{key}: {value['value']:.4f}")
    print(f"report: {run_dir.report_path}")
