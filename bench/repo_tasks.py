"""Repository tasks from real PyPI projects (``env=code env.tasks.source=repo``): candidate bugs, how many a test
catches (kept), by operator, and the reference fix's pass rate through the agent loop and the fresh-sandbox verifier.

The projects are the sdists shipped in tests/envs/code/assets/sdists (inflection 0.5.1, cachetools 5.5.2, as
``pip download --no-deps --no-binary :all:`` fetched them). Every candidate is enumerated; ``--sample`` of them
(round-robin over the operators, seeded) are run against the suite in the bwrap sandbox.

    python bench/repo_tasks.py [--sample 36] [--fixes 6]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from agentkit.config import SandboxConfig
from agentkit.envs.code import CodeEnv
from agentkit.envs.code.inject import ALL_OPERATORS, interleave, project_mutations
from agentkit.envs.code.repo import Project, check_mutants, mutant_task
from agentkit.loop import EpisodeLimits, run_episode

SDISTS = Path(__file__).resolve().parents[1] / "tests" / "envs" / "code" / "assets" / "sdists"
PROJECTS = {"inflection-0.5.1": "pytest -q", "cachetools-5.5.2": "pytest -q tests"}


async def measure(env: CodeEnv, path: Path, sample: int, fixes: int, seed: int) -> dict:
    project = Project.load(path)
    candidates = project_mutations(path, ALL_OPERATORS, project.package)
    by_operator: dict[str, list] = defaultdict(list)
    for mutation in candidates:
        by_operator[mutation.operator].append(mutation)
    rng = random.Random(seed)
    for group in by_operator.values():
        rng.shuffle(group)
    chosen = interleave([by_operator[op] for op in sorted(by_operator)])[:sample]
    started = time.perf_counter()
    checks = {}
    for i in range(0, len(chosen), 12):
        checks |= await check_mutants(project, chosen[i : i + 12], env._one_off_sandbox, env.pytest_args)
    seconds = time.perf_counter() - started
    kept = [m for m in chosen if checks[m.id].valid]
    tried, caught = Counter(m.operator for m in chosen), Counter(m.operator for m in kept)
    passed = 0
    for mutation in kept[:fixes]:
        task = mutant_task(
            project,
            mutation,
            checks[mutation.id],
            env.name,
            external=True,
            test_command=env.test_command,
            pytest_args=env.pytest_args,
        )
        trajectory = await run_episode(
            env, task, env.reference_solver(task), limits=EpisodeLimits(max_turns=12, max_seconds=300)
        )
        passed += int(trajectory.passed)
    return {
        "candidates": len(candidates),
        "sampled": len(chosen),
        "kept": len(kept),
        "seconds": seconds,
        "by_operator": {op: (caught[op], tried[op]) for op in sorted(tried)},
        "fixed": passed,
        "fixes_tried": min(fixes, len(kept)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=36)
    parser.add_argument("--fixes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    totals = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in PROJECTS.items():
            with tarfile.open(SDISTS / f"{name}.tar.gz") as archive:
                archive.extractall(tmp, filter="data")
            env = CodeEnv(sandbox=SandboxConfig(backend="bwrap", pool_size=2), test_command=command)
            try:
                result = asyncio.run(measure(env, Path(tmp) / name, args.sample, args.fixes, args.seed))
            finally:
                asyncio.run(env.aclose())
            ops = ", ".join(f"{op} {k}/{n}" for op, (k, n) in result["by_operator"].items())
            print(
                f"{name}: {result['candidates']} candidate bugs; {result['kept']} of {result['sampled']} sampled "
                f"caught by a test ({result['seconds']:.0f} s); reference fix {result['fixed']}/"
                f"{result['fixes_tried']}\n  by operator (kept/sampled): {ops}"
            )
            totals.update({k: result[k] for k in ("candidates", "sampled", "kept", "fixed", "fixes_tried")})
    print(f"candidate_bugs: {totals['candidates']}")
    print(f"kept_ratio: {totals['kept'] / max(1, totals['sampled']):.3f}")
    print(f"reference_fix_pass_ratio: {totals['fixed'] / max(1, totals['fixes_tried']):.3f}")


if __name__ == "__main__":
    main()
