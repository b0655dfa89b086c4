"""``agentkit sandbox exec`` (run code from stdin, print the ExecResult as JSON) and
``agentkit sandbox check`` (the conformance suite against a live backend, as a pass/fail table)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentkit.config import SandboxConfig
from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.sandbox import SandboxLimits


@dataclass
class SandboxExecConfig(SandboxConfig):
    code: str | None = None
    """Python source to run; None: read it from stdin (or from ``file``)."""
    file: str | None = None
    session: bool = False
    """Run the code as one cell of the warm Python session instead of a cold ``python3 main.py``."""


@dataclass
class SandboxCheckConfig(SandboxConfig):
    checks: list[str] = field(default_factory=list)
    """Names of the checks to run (default: all); see ``agentkit.envs.sandbox.conformance.CHECKS``."""
    skip_slow: bool = False


def register() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="sandbox_exec_schema", node=SandboxExecConfig)
    store.store(name="sandbox_check_schema", node=SandboxCheckConfig)


def _limits(cfg: SandboxConfig) -> SandboxLimits:
    return SandboxLimits(**{name: getattr(cfg.limits, name) for name in SandboxLimits.__dataclass_fields__})


def _read_code(cfg: SandboxExecConfig) -> str:
    if cfg.code is not None:
        return cfg.code
    if cfg.file is not None:
        path = Path(cfg.file)
        if not path.is_file():
            raise ConfigError(f"file: {cfg.file!r} is not a readable file")
        return path.read_text()
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("no code: pipe Python code on stdin, or pass code=... or file=...")
    return sys.stdin.read()


def exec_code(cfg: SandboxExecConfig) -> int:
    """Run Python code in a fresh sandbox with the configured limits; print the ExecResult as JSON."""
    from agentkit.sandbox import create_sandbox

    code = _read_code(cfg)

    async def run():
        async with create_sandbox(cfg.backend, limits=_limits(cfg), **dict(cfg.options)) as sandbox:
            if cfg.session:
                return await (await sandbox.python()).run(code)
            await sandbox.write_file("main.py", code)
            return await sandbox.exec(["python3", "main.py"])

    try:
        result = asyncio.run(run())
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(f"the {cfg.backend} sandbox is unavailable: {exc}") from exc
    print(result.model_dump_json())
    return 0


def check(cfg: SandboxCheckConfig) -> int:
    """Run the conformance checks against a live backend and print a pass/fail table."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agentkit.envs.sandbox.conformance import CHECKS, KNOWN_GAPS, Harness, run_check

    unknown = [name for name in cfg.checks if name not in CHECKS]
    if unknown:
        raise ConfigError(f"checks: unknown check(s) {unknown}; known: {', '.join(CHECKS)}")
    names = [n for n in (cfg.checks or list(CHECKS)) if not (cfg.skip_slow and CHECKS[n].slow)]
    console = Console()
    harness = Harness(cfg.backend, dict(cfg.options), _limits(cfg))
    _describe_backend(console, cfg)

    async def run_all():
        rows = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{cfg.backend} conformance", total=len(names))
            for name in names:
                progress.update(task, description=f"{cfg.backend}: {name}")
                started = time.monotonic()
                outcome, detail = await run_check(name, harness)
                rows.append((name, outcome, time.monotonic() - started, detail))
                progress.advance(task)
        return rows

    rows = asyncio.run(run_all())
    table = Table(title=f"sandbox conformance: {cfg.backend}")
    for column in ("check", "result", "seconds", "property / detail"):
        table.add_column(column, overflow="fold")
    style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "gap": "[yellow]gap[/]"}
    for name, outcome, seconds, detail in rows:
        table.add_row(name, style[outcome], f"{seconds:.2f}", f"{CHECKS[name].description}\n[dim]{detail}[/]")
    console.print(table)
    failed = [r[0] for r in rows if r[1] == "fail"]
    gaps = KNOWN_GAPS.get(cfg.backend, {})
    summary = f"{len(rows) - len(failed)}/{len(rows)} passed"
    if gaps:
        summary += f"; known gaps: {', '.join(gaps)}"
    console.print(
        f"[bold {'red' if failed else 'green'}]{summary}[/]"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def _describe_backend(console, cfg: SandboxConfig) -> None:
    """The diagnosis first: what this host offers the backend and which mechanism enforces each limit.
    A backend that cannot run here raises its one-line refusal (exit 2) before any check starts."""
    from agentkit.envs.sandbox.base import SandboxBase
    from agentkit.sandbox import create_sandbox

    sandbox = create_sandbox(cfg.backend, limits=_limits(cfg), **dict(cfg.options))
    try:
        if not isinstance(sandbox, SandboxBase):
            raise ConfigError(
                f"sandbox.backend: '{cfg.backend}' is not built on SandboxBase, so it cannot report "
                "what this host offers it and which mechanism enforces each limit"
            )
        refusal = sandbox.refusal()
        for what, how in sandbox.diagnosis_facts().items():
            console.print(f"[dim]{what}: {how}[/]")
        if refusal is None:
            for what, how in sandbox.limits_report().items():
                console.print(
                    f"[dim]{what}: {how}[/]" if "NOT ENFORCED" not in how else f"[yellow]{what}: {how}[/]"
                )
    finally:
        asyncio.run(sandbox.close())
    if refusal is not None:
        raise SandboxUnavailable(f"the {cfg.backend} sandbox cannot run here: {refusal}")
    console.print(f"[dim]limits: {asdict(cfg.limits)}[/]")
