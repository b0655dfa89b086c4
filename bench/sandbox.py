"""Sandbox latency, side by side in one run: a bare ``python -c pass`` subprocess (the baseline), a cold
bwrap exec of the same command, a cold docker exec (when a Docker-API socket answers), and a warm
session cell. Cold runs are interleaved round-robin so machine load hits every variant alike.

    python bench/sandbox.py [--n 30] [--cells 1000] [--sessions 16] [--no-docker]

Density, today's sessions (a fresh interpreter per session) side by side with zygote-forked ones
(``options.zygote=true``): ``--sessions`` warm sessions (sympy and numpy preloaded) started at once;
each one's start time, the PSS of every process they hold (bwrap, its reaper, the worker; for the
zygote also the session's helper and the zygote itself, shared out) summed from
``/proc/<pid>/smaps_rollup`` while they sit idle, divided by the number of sessions; then trivial
cells in all of them at once.

Targets: warm cell p50 >= 30x faster than bare ``python -c``; cold bwrap <= 1.3x bare;
>= 300 trivial cells/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agentkit.sandbox import SandboxLimits, create_sandbox


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def bare_exec() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "pass",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )
    await proc.wait()
    return time.perf_counter() - started


async def sandbox_exec(sandbox) -> float:
    started = time.perf_counter()
    result = await sandbox.exec(["python3", "-c", "pass"])
    assert result.ok, result
    return time.perf_counter() - started


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (through /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _session_pids(sb) -> set[int]:
    """Every process one sandbox holds: its bwrap instances' trees, and for a zygote-forked session the
    session process and the helper that waits on it (children of the zygote, outside those trees)."""
    pids = {p for proc in sb._procs for p in _tree(proc.pid)}
    worker = getattr(getattr(sb, "_session", None), "_proc", None)
    pid = getattr(worker, "pid", None)
    if pid:
        pids.add(pid)
        try:
            pids.add(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


async def density(n: int, limits: SandboxLimits, zygote: bool, cells: int) -> dict[str, float]:
    """Start ``n`` warm sessions at once; their start times, the idle PSS per session (a zygote's own
    PSS shared out over the sessions), then ``cells`` cells in each session, all sessions at once."""
    from agentkit.envs.sandbox import bwrap

    async with create_sandbox("bwrap", limits=limits, zygote=zygote) as first:
        await first.python()  # the zygote (when used) is up before anything is timed
    sandboxes = [create_sandbox("bwrap", limits=limits, zygote=zygote) for _ in range(n)]
    one_by_one: list[float] = []
    burst: list[float] = []

    async def start(sb, into: list[float]) -> None:
        t = time.perf_counter()
        await sb.python()
        into.append(time.perf_counter() - t)

    try:
        sequential = min(10, n)
        for sb in sandboxes[:sequential]:  # a new session while the machine is otherwise idle
            await start(sb, one_by_one)
        began = time.perf_counter()
        await asyncio.gather(*(start(sb, burst) for sb in sandboxes[sequential:]))
        wall = time.perf_counter() - began
        await asyncio.sleep(1.0)
        pids = {p for sb in sandboxes for p in _session_pids(sb)}
        if zygote:
            pids |= {z.proc.pid for z in bwrap._ZYGOTES.values()}
        pss = sum(_pss_kib(p) for p in pids) / 1024
        sessions = [await sb.python() for sb in sandboxes]

        async def drive(session) -> None:
            for _ in range(cells):
                result = await session.run("1 + 1")
                assert result.ok, result

        began = time.perf_counter()
        await asyncio.gather(*(drive(session) for session in sessions))
        rate = n * cells / (time.perf_counter() - began)
    finally:
        await asyncio.gather(*(sb.close() for sb in sandboxes))
    burst = burst or one_by_one
    return {
        "session_start_p50_ms": pct(one_by_one, 0.5) * 1000,
        "session_start_p99_ms": pct(one_by_one, 0.99) * 1000,
        "burst_start_p50_ms": pct(burst, 0.5) * 1000,
        "burst_start_p99_ms": pct(burst, 0.99) * 1000,
        "sessions_started_per_s": len(burst) / wall,
        "pss_per_idle_session_mib": pss / n,
        "processes_per_session": len(pids) / n,
        "cells_per_s_all_sessions": rate,
    }


async def main(args) -> None:
    console = Console()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # ~8 descriptors per held session
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from agentkit.envs.sandbox.docker import socket_status

    docker_ok, docker_where = (False, "disabled by --no-docker") if args.no_docker else socket_status()
    console.print(f"[dim]{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; docker: {docker_where}[/]")
    limits = SandboxLimits(timeout=60)
    samples: dict[str, list[float]] = {"bare python -c": [], "cold bwrap exec": []}
    bwrap = create_sandbox("bwrap", limits=limits)
    docker = create_sandbox("docker", limits=limits) if docker_ok else None
    if docker is not None:
        samples["cold docker exec"] = []
    try:
        await sandbox_exec(bwrap)  # first-use setup (cgroup detection) is not an exec
        if docker is not None:
            await docker.start()
            await sandbox_exec(docker)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("cold execs (round-robin)", total=args.n)
            for _ in range(args.n):
                samples["bare python -c"].append(await bare_exec())
                samples["cold bwrap exec"].append(await sandbox_exec(bwrap))
                if docker is not None:
                    samples["cold docker exec"].append(await sandbox_exec(docker))
                progress.advance(task)
            session = await bwrap.python()
            for _ in range(50):
                await session.run("1 + 1")
            cell_times = []
            task = progress.add_task("warm cells", total=args.cells)
            started = time.perf_counter()
            for _ in range(args.cells):
                t = time.perf_counter()
                result = await session.run("1 + 1")
                cell_times.append(time.perf_counter() - t)
                progress.advance(task)
            serial_rate = args.cells / (time.perf_counter() - started)
            assert result.ok and result.stdout == "2\n", result
            samples["warm session cell"] = cell_times

            sandboxes = [create_sandbox("bwrap", limits=limits, preload=[]) for _ in range(args.parallel)]
            sessions = await asyncio.gather(*(sb.python() for sb in sandboxes))

            async def drive(s, n):
                for _ in range(n):
                    await s.run("1 + 1")

            per = args.cells // args.parallel
            started = time.perf_counter()
            await asyncio.gather(*(drive(s, per) for s in sessions))
            parallel_rate = per * args.parallel / (time.perf_counter() - started)
            await asyncio.gather(*(sb.close() for sb in sandboxes))
            dense = {}
            for variant, zygote in (("current", False), ("zygote", True)):
                dense[variant] = await density(args.sessions, limits, zygote, args.session_cells)
            if args.zygote_sessions:
                dense[f"zygote x{args.zygote_sessions}"] = await density(
                    args.zygote_sessions, limits, True, args.session_cells
                )
    finally:
        await bwrap.close()
        if docker is not None:
            await docker.close()

    table = Table(title="sandbox latency (seconds)")
    for column in ("variant", "n", "p50", "p95", "execs/s", "p50 vs bare"):
        table.add_column(column, justify="right")
    bare_p50 = pct(samples["bare python -c"], 0.5)
    for name, values in samples.items():
        rate = len(values) / sum(values)
        table.add_row(
            name,
            str(len(values)),
            f"{pct(values, 0.5):.5f}",
            f"{pct(values, 0.95):.5f}",
            f"{rate:.1f}",
            f"{pct(values, 0.5) / bare_p50:.3f}x",
        )
    console.print(table)
    console.print(
        f"warm cells/s, one session: {serial_rate:.0f}; {args.parallel} sessions at once: {parallel_rate:.0f}"
    )

    warm_p50 = pct(samples["warm session cell"], 0.5)
    lines = {
        "bare_python_c_p50_ms": bare_p50 * 1000,
        "cold_bwrap_exec_p50_ms": pct(samples["cold bwrap exec"], 0.5) * 1000,
        "cold_bwrap_exec_p95_ms": pct(samples["cold bwrap exec"], 0.95) * 1000,
        "warm_cell_p50_ms": warm_p50 * 1000,
        "warm_cell_p95_ms": pct(samples["warm session cell"], 0.95) * 1000,
        "warm_cells_per_s": serial_rate,
        "warm_cells_per_s_parallel": parallel_rate,
        "cold_bwrap_vs_bare_ratio": pct(samples["cold bwrap exec"], 0.5) / bare_p50,
        "bare_vs_warm_cell_speedup_ratio": bare_p50 / warm_p50,
    }
    if "cold docker exec" in samples:
        lines["cold_docker_exec_p50_ms"] = pct(samples["cold docker exec"], 0.5) * 1000
        lines["cold_docker_vs_bare_ratio"] = pct(samples["cold docker exec"], 0.5) / bare_p50
    mode = "root" if os.geteuid() == 0 else "user"
    table = Table(title=f"{args.sessions} warm sessions at once ({mode} mode, sympy+numpy preloaded)")
    for column in (
        "variant",
        "start p50/p99 ms (one at a time)",
        "start p50/p99 ms (the rest at once)",
        "idle PSS MiB/session",
        "processes/session",
        "cells/s (all sessions at once)",
    ):
        table.add_column(column, justify="right")
    for variant, d in dense.items():
        table.add_row(
            variant,
            f"{d['session_start_p50_ms']:.0f} / {d['session_start_p99_ms']:.0f}",
            f"{d['burst_start_p50_ms']:.0f} / {d['burst_start_p99_ms']:.0f}",
            f"{d['pss_per_idle_session_mib']:.1f}",
            f"{d['processes_per_session']:.1f}",
            f"{d['cells_per_s_all_sessions']:.0f}",
        )
    console.print(table)
    for variant, d in dense.items():
        lines.update({f"{variant.replace(' x', '_')}_{k}": v for k, v in d.items()})
    current, zyg = dense["current"], dense["zygote"]
    lines["zygote_vs_current_pss_ratio"] = (
        zyg["pss_per_idle_session_mib"] / current["pss_per_idle_session_mib"]
    )
    lines["zygote_vs_current_start_p50_ratio"] = zyg["session_start_p50_ms"] / current["session_start_p50_ms"]
    lines["zygote_sessions_per_24gib"] = 24 * 1024 / zyg["pss_per_idle_session_mib"]
    lines["current_sessions_per_24gib"] = 24 * 1024 / current["pss_per_idle_session_mib"]
    for name, value in lines.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="cold execs per variant")
    parser.add_argument("--cells", type=int, default=1000, help="warm cells")
    parser.add_argument(
        "--parallel", type=int, default=2, help="sessions driven at once for the parallel rate"
    )
    parser.add_argument(
        "--sessions", type=int, default=16, help="warm sessions held at once for the density figures"
    )
    parser.add_argument(
        "--session-cells", type=int, default=20, help="cells per session, all sessions at once"
    )
    parser.add_argument(
        "--zygote-sessions",
        type=int,
        default=0,
        help="also hold this many zygote sessions at once (e.g. 256; today's sessions would need "
        "~48 MiB each)",
    )
    parser.add_argument("--no-docker", action="store_true")
    asyncio.run(main(parser.parse_args()))
