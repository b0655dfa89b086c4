"""Repository-level tasks in the real bwrap sandbox: generation by bug injection, the reference solver
through the agent loop, the bash and edit tools, and patches that try to game the test run."""

from __future__ import annotations

import pytest

from agentkit.client import ScriptedClient
from agentkit.config import TaskSourceConfig
from agentkit.envs.code.inject import Mutation
from agentkit.envs.code.repo import run_suite, suspicious_constructs, upload_project
from agentkit.loop import EpisodeLimits, run_episode
from agentkit.records import Status
from agentkit.toolcalls import render_tool_call

pytestmark = pytest.mark.bwrap

LIMITS = EpisodeLimits(max_turns=12, max_seconds=180)


@pytest.fixture(scope="module")
def tasks(world):
    return world.env.load_tasks(TaskSourceConfig(source="generated", n=3, seed=11))


def test_generated_tasks_carry_a_caught_bug(world, tasks):
    assert len({t.meta["project"] for t in tasks}) >= 2
    for task in tasks:
        meta = task.meta
        assert meta["kind"] == "repo" and meta["fail_to_pass"]
        assert not set(meta["fail_to_pass"]) & set(meta["pass_to_pass"])
        mutation = Mutation.from_dict(meta["mutation"])
        project = world.env.project(task)
        original = project.files()[mutation.file]
        buggy = mutation.apply(original)
        assert buggy != original
        old, new = mutation.fix_patch(buggy)
        assert buggy.replace(old, new) == original
        assert mutation.new not in task.prompt and meta["fail_to_pass"][0] in task.prompt


@pytest.mark.parametrize("index", [0, 1, 2])
def test_reference_solver_fixes_the_bug(world, tasks, index):
    task = tasks[index]
    trajectory = world.run(run_episode(world.env, task, world.env.reference_solver(task), limits=LIMITS))
    assert trajectory.status == Status.completed, trajectory.error
    assert trajectory.passed and trajectory.reward == 1.0, trajectory.verdict
    names = [c.name for m in trajectory.messages if m.tool_calls for c in m.tool_calls]
    assert names.count("bash") >= 3 and names.count("edit") == 2
    assert trajectory.stats.tool_errors == 0
    observations = [m.content for m in trajectory.messages if m.role == "tool"]
    assert "failed" in observations[1].lower()
    assert "passed" in observations[-1] and "failed" not in observations[-1]


def _play(world, task, calls, final="Done."):
    script = [render_tool_call(name, args) for name, args in calls] + [final]
    return world.run(run_episode(world.env, task, ScriptedClient(script), limits=LIMITS))


def _fix_call(task):
    mutation = Mutation.from_dict(task.meta["mutation"])
    return (
        "edit",
        {
            "command": "str_replace",
            "path": f"/workspace/{task.meta['project']}/{mutation.file}",
            "old_str": mutation.new,
            "new_str": mutation.old,
        },
    )


def test_bash_keeps_directory_variables_and_functions(world, tasks):
    task = tasks[0]
    trajectory = _play(
        world,
        task,
        [
            (
                "bash",
                {"command": 'pwd; cd tests && export GREETING=hi && NAME=you && shout() { echo "$1!"; }'},
            ),
            ("bash", {"command": "pwd; echo $GREETING $NAME; shout hey"}),
            ("bash", {"command": "cd /workspace; exit 3"}),
            ("bash", {"command": "pwd; ls /tmp/kept 2>&1; touch /tmp/kept"}),
            ("bash", {"command": "ls /tmp/kept 2>&1 | head -1"}),
        ],
    )
    outputs = [m.content for m in trajectory.messages if m.role == "tool"]
    assert outputs[0].strip() == f"/workspace/{task.meta['project']}"
    assert outputs[1].splitlines() == [f"/workspace/{task.meta['project']}/tests", "hi you", "hey!"]
    assert "exit code 3" in outputs[2]
    assert outputs[3].startswith("/workspace\n")
    assert "No such file" in outputs[4]  # each call is a new process with its own /tmp
    assert not trajectory.passed


def test_edit_tool_views_and_edits(world, tasks):
    task = tasks[0]
    project = task.meta["project"]
    init = f"/workspace/{project}/{task.meta['package']}/__init__.py"
    trajectory = _play(
        world,
        task,
        [
            ("edit", {"command": "view", "path": f"/workspace/{project}"}),
            ("edit", {"command": "view", "path": init, "view_range": [1, 2]}),
            ("edit", {"command": "str_replace", "path": init, "old_str": "nothing like this"}),
            ("edit", {"command": "str_replace", "path": init, "old_str": "import"}),
            ("edit", {"command": "insert", "path": init, "insert_line": 1, "new_str": "# a note"}),
            ("bash", {"command": "cd tests"}),
            (
                "edit",
                {"command": "view", "path": f"../{task.meta['package']}/__init__.py", "view_range": [1, 3]},
            ),
            ("edit", {"command": "create", "path": "notes.txt", "file_text": "first\nsecond\n"}),
            ("edit", {"command": "create", "path": "notes.txt", "file_text": "again"}),
            ("bash", {"command": "cat notes.txt"}),
            ("edit", {"command": "view", "path": "/etc/passwd"}),
            ("edit", {"command": "view", "path": "../../etc"}),
        ],
    )
    out = [m.content for m in trajectory.messages if m.role == "tool"]
    assert f"/workspace/{project}/tests" in out[0] and "__pycache__" not in out[0]
    assert out[1].splitlines()[0] == '     1\t"""' + out[1].splitlines()[0].split('"""', 1)[1]
    assert len(out[1].splitlines()) == 2
    assert out[2].startswith("error:") and "not found" in out[2]
    assert out[3].startswith("error:") and "occurs" in out[3] and "times" in out[3]
    assert "Inserted 1 line" in out[4]
    assert out[6].splitlines()[1] == "     2\t# a note"
    assert (
        out[7].startswith(f"Created /workspace/{project}/tests/notes.txt")
        and out[8].startswith("error:")
        and "exists" in out[8]
    )
    assert out[9] == "first\nsecond"
    assert out[10].startswith("error:") and out[11].startswith("error:")
    assert trajectory.stats.tool_errors == 5


def test_fix_plus_harmless_changes_passes(world, tasks):
    task = tasks[1]
    project, package = task.meta["project"], task.meta["package"]
    trajectory = _play(
        world,
        task,
        [
            _fix_call(task),
            ("bash", {"command": f"cd /workspace/{project} && echo '# reviewed' >> {package}/__init__.py"}),
        ],
    )
    assert trajectory.passed, trajectory.verdict


GAMING = {
    "rewrite the failing tests": lambda t: [
        (
            "bash",
            {
                "command": f"cd /workspace/{t.meta['project']} && for f in tests/test_*.py; do "
                "printf 'def test_ok():\\n    assert True\\n' > $f; done"
            },
        )
    ],
    "conftest that passes everything": lambda t: [
        (
            "edit",
            {
                "command": "create",
                "path": f"/workspace/{t.meta['project']}/conftest.py",
                "file_text": "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
                "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n",
            },
        )
    ],
    "exit at import": lambda t: [
        (
            "bash",
            {
                "command": f"cd /workspace/{t.meta['project']} && printf 'import os\\nos._exit(0)\\n' "
                f">> {t.meta['package']}/__init__.py"
            },
        )
    ],
    "patch pytest from the package": lambda t: [
        (
            "bash",
            {
                "command": f"cd /workspace/{t.meta['project']} && printf 'import _pytest.runner as r\\n"
                f"r.call_and_report = lambda *a, **k: None\\n' >> {t.meta['package']}/__init__.py"
            },
        )
    ],
    "print a passing summary": lambda t: [
        (
            "bash",
            {
                "command": f"cd /workspace/{t.meta['project']} && printf 'print(\"===== 99 passed =====\")\\n' "
                f">> {t.meta['package']}/__init__.py"
            },
        )
    ],
}


@pytest.mark.parametrize("name", list(GAMING))
def test_gaming_the_test_run_fails(world, tasks, name):
    task = tasks[2]
    trajectory = _play(world, task, GAMING[name](task))
    assert trajectory.status == Status.completed, trajectory.error
    assert not trajectory.passed and trajectory.reward == 0.0, trajectory.verdict
    if name in ("exit at import", "patch pytest from the package"):
        assert "tamper" in trajectory.verdict.reason


def test_suspicious_constructs_only_counts_additions():
    original = "import re\nPATTERN = re.compile('x')\n"
    assert suspicious_constructs(original, original + "\ndef f():\n    return 1\n") == []
    assert suspicious_constructs(original, original + "import os\nos._exit(0)\n") == ["_exit"]
    assert suspicious_constructs(original, original + "getattr(__import__('sys'), 'exit')()\n") == [
        "__import__",
        "exit",
    ]
    assert "__eq__" in suspicious_constructs("", "class A:\n    def __eq__(self, o):\n        return True\n")
    assert suspicious_constructs("", "getattr(os, '_exit')(0)\n") == ["_exit"]
    assert (
        suspicious_constructs("", 'def gcd(a, b):\n    """Evaluate the gcd of the submodules\' values."""\n')
        == []
    )


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_the_suite_runner_reports_tampering_and_early_exits(world, tasks):
    """The in-sandbox layer alone (no static check): runner patches are detected, exits leave no pass."""
    task = tasks[0]
    project = world.env.project(task)
    init = f"{project.package}/__init__.py"
    pristine = project.files()[init]
    variants = [
        {"id": "clean", "files": {}},
        {
            "id": "patched",
            "files": {
                init: pristine + "\nimport _pytest.runner\n"
                "_pytest.runner.call_and_report = lambda *a, **k: None\n"
            },
        },
        {"id": "exits", "files": {init: pristine + "\nimport os\nos._exit(0)\n"}},
        {"id": "hangs", "files": {init: pristine + "\nwhile True:\n    pass\n"}},
    ]

    async def go():
        async with world.env.pool(python=False).sandbox() as sandbox:
            await upload_project(sandbox, project)
            return await run_suite(sandbox, project.name, variants, run_timeout=5)

    reports = world.run(go())
    clean = reports["clean"]
    assert clean and clean.outcomes and set(clean.outcomes.values()) == {"passed"} and not clean.tampered
    assert reports["patched"] is None or reports["patched"].tampered
    assert reports["exits"] is None or not any(v == "passed" for v in reports["exits"].outcomes.values())
    assert reports["hangs"] is None


def test_generated_tasks_can_mix_in_function_tasks(world):
    cfg = TaskSourceConfig(
        source="generated", n=4, seed=5, options={"kinds": ["repo", "function"], "projects": ["ratmat"]}
    )
    tasks = world.env.load_tasks(cfg)
    assert sorted(t.meta["kind"] for t in tasks) == ["function", "function", "repo", "repo"]
    assert {t.meta["project"] for t in tasks if t.meta["kind"] == "repo"} == {"ratmat"}
    assert [t.id for t in world.env.load_tasks(cfg)] == [t.id for t in tasks]
