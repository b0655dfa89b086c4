"""Sandbox latency, side by side in one run: a bare ``python -c pass`` subprocess (the baseline), a cold
bwrap exec of the same command, a cold docker exec (when a Docker-API socket answers), and a warm
session cell. Cold runs are interleaved round-robin so machine load hits every variant alike.

    python bench/sandbox.py [--n 30] [--cells 1000] [--no-docker]

Targets: warm cell p50 >= 30x faster than bare ``python -c``; cold bwrap <= 1.3x bare;
>= 300 trivial cells/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from agentkit.sandbox import SandboxLimits, create_sandbox  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def bare_exec() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    await proc.wait()
    return time.perf_counter() - started


async def sandbox_exec(sandbox) -> float:
    started = time.perf_counter()
    result = await sandbox.exec(["python3", "-c", "pass"])
    assert result.ok, result
    return time.perf_counter() - started


async def main(args) -> None:
    console = Console()
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
        table.add_row(name, str(len(values)), f"{pct(values, 0.5):.5f}", f"{pct(values, 0.95):.5f}",
                      f"{rate:.1f}", f"{pct(values, 0.5) / bare_p50:.3f}x")
    console.print(table)
    console.print(f"warm cells/s, one session: {serial_rate:.0f}; {args.parallel} sessions at once: {parallel_rate:.0f}")

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
    for name, value in lines.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="cold execs per variant")
    parser.add_argument("--cells", type=int, default=1000, help="warm cells")
    parser.add_argument("--parallel", type=int, default=2, help="sessions driven at once for the parallel rate")
    parser.add_argument("--no-docker", action="store_true")
    asyncio.run(main(parser.parse_args()))
