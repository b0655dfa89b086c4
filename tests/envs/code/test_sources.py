"""Task sources of the code env: HumanEval, MBPP-style and stdin/stdout files, generated tasks; bad
rows fail at load time with path:line."""

from __future__ import annotations

import gzip
import json

import pytest

from agentkit.config import TaskSourceConfig
from agentkit.envs.code import CodeEnv
from agentkit.envs.code.function import extract_code
from agentkit.errors import ConfigError, DataError

MBPP_ROWS = [
    {
        "task_id": 901,
        "text": "Write a function to return the sum of the squares of a list of numbers.",
        "code": "def square_sum(xs):\n    return sum(x * x for x in xs)\n",
        "test_setup_code": "",
        "test_list": [
            "assert square_sum([1, 2]) == 5",
            "assert square_sum([]) == 0",
            "assert square_sum([-3]) == 9",
        ],
        "challenge_test_list": [],
    },
    {
        "task_id": 902,
        "text": "Write a function that keeps the pairs whose first item is larger.",
        "code": "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\n"
        "def bigger_first(pairs):\n    return [(p.a, p.b) for p in pairs if p.a > p.b]\n",
        "test_setup_code": "",
        "test_list": [
            "assert bigger_first([Pair(2, 1), Pair(1, 2)]) == [(2, 1)]",
            "assert bigger_first([]) == []",
        ],
        "challenge_test_list": [],
    },
]
STDIO_ROWS = [
    {
        "id": "sum-two",
        "prompt": "Read two integers on one line and print their sum.",
        "cases": [
            {"input": "1 2\n", "output": "3\n"},
            {"input": "-5 5\n", "output": "0\n"},
            {"input": "100 23\n", "output": "123\n"},
        ],
        "solution": "a, b = map(int, input().split())\nprint(a + b)\n",
    },
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def env():
    return CodeEnv()


def test_extract_code_takes_the_last_block_outside_think():
    assert extract_code("```python\na = 1\n```\ntext\n```py\nb = 2\n```") == "b = 2\n"
    assert extract_code("<think>```python\nx = 1\n```</think>no code") is None
    assert extract_code("```\nplain = True\n```") == "plain = True\n"
    assert extract_code("no code at all") is None


def test_mbpp_rows_show_one_test_and_keep_the_rest(env, tmp_path):
    tasks = env.load_tasks(TaskSourceConfig(source="mbpp", path=_write(tmp_path / "mbpp.jsonl", MBPP_ROWS)))
    first, second = tasks
    assert first.id == "901" and first.meta["entry_point"] == "square_sum"
    assert (
        "assert square_sum([1, 2]) == 5" in first.prompt and "assert square_sum([]) == 0" not in first.prompt
    )
    assert (
        first.meta["tests"] == MBPP_ROWS[0]["test_list"]
        and first.meta["public_tests"] == MBPP_ROWS[0]["test_list"][:1]
    )
    assert second.meta["entry_point"] == "bigger_first"
    assert "x * x" not in first.prompt


def test_stdio_rows(env, tmp_path):
    (task,) = env.load_tasks(TaskSourceConfig(source="stdio", path=_write(tmp_path / "io.jsonl", STDIO_ROWS)))
    assert task.meta["format"] == "stdio" and len(task.meta["cases"]) == 3
    assert "1 2" in task.prompt and "100 23" not in task.prompt


def test_jsonl_rows_pick_their_kind(env, tmp_path):
    rows = [
        {"id": "a", "prompt": "Define f(x) returning x + 1.", "tests": ["assert f(1) == 2"]},
        {"id": "b", "prompt": "Echo the input.", "cases": [{"input": "x\n", "output": "x\n"}]},
    ]
    a, b = env.load_tasks(TaskSourceConfig(source="jsonl", path=_write(tmp_path / "mixed.jsonl", rows)))
    assert a.meta["format"] == "function" and a.meta["entry_point"] == "f"
    assert b.meta["format"] == "stdio"


@pytest.mark.parametrize(
    "row,message",
    [
        ({"task_id": 1, "text": "x", "code": "def f(): pass", "test_list": []}, "tests"),
        ({"task_id": 1, "text": "x", "code": "def f(): pass", "test_list": ["assert f( =="]}, "not Python"),
        (
            {"task_id": 1, "text": "x", "code": "def f(:", "test_list": ["assert f() is None"]},
            "not valid Python",
        ),
        ({"task_id": 1, "text": "", "code": "def f(): pass", "test_list": ["assert f() is None"]}, "text"),
    ],
)
def test_bad_mbpp_rows_name_the_line(env, tmp_path, row, message):
    path = _write(tmp_path / "bad.jsonl", [MBPP_ROWS[0], row])
    with pytest.raises(DataError, match=message) as info:
        env.load_tasks(TaskSourceConfig(source="mbpp", path=path))
    assert f"{path}:2" in str(info.value)


def test_bad_stdio_rows_name_the_line(env, tmp_path):
    path = _write(
        tmp_path / "bad.jsonl", [STDIO_ROWS[0], {"id": "x", "prompt": "p", "cases": [{"input": 1}]}]
    )
    with pytest.raises(DataError, match="input") as info:
        env.load_tasks(TaskSourceConfig(source="stdio", path=path))
    assert f"{path}:2" in str(info.value)


def test_humaneval_selection_and_custom_file(env, tmp_path):
    some = env.load_tasks(TaskSourceConfig(source="humaneval", n=5, seed=3))
    assert len(some) == 5 and some == env.load_tasks(TaskSourceConfig(source="humaneval", n=5, seed=3))
    test = env.load_tasks(TaskSourceConfig(source="humaneval", split="test", test_fraction=0.25))
    train = env.load_tasks(TaskSourceConfig(source="humaneval", split="train", test_fraction=0.25))
    assert len(test) + len(train) == 164 and not {t.id for t in test} & {t.id for t in train}
    row = {
        "task_id": "Mine/0",
        "prompt": 'def one():\n    """>>> one()\n    1\n    """\n',
        "canonical_solution": "    return 1\n",
        "entry_point": "one",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
    }
    path = tmp_path / "mine.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n" + json.dumps({"task_id": "Mine/1"}) + "\n")
    with pytest.raises(DataError, match=f"{path}:2"):
        env.load_tasks(TaskSourceConfig(source="humaneval", path=str(path)))


def test_generated_function_tasks_are_deterministic(env):
    cfg = TaskSourceConfig(source="generated", n=12, seed=4, options={"kinds": ["function"]})
    tasks = env.load_tasks(cfg)
    assert [t.model_dump() for t in tasks] == [t.model_dump() for t in env.load_tasks(cfg)]
    assert len({t.id for t in tasks}) == 12 and all(t.meta["kind"] == "function" for t in tasks)
    other = env.load_tasks(
        TaskSourceConfig(source="generated", n=12, seed=5, options={"kinds": ["function"]})
    )
    assert {t.id for t in other} != {t.id for t in tasks}
    for task in tasks:
        hidden = task.meta.get("tests") or task.meta["cases"]
        assert len(hidden) >= 5
        assert task.meta["solution"].strip() not in task.prompt


@pytest.mark.parametrize(
    "options,key",
    [
        ({"kinds": ["repo"], "flavour": 1}, "flavour"),
        ({"kinds": ["everything"]}, "kinds"),
        ({"projects": ["no-such-project"]}, "projects"),
        ({"operators": ["rename_everything"]}, "operators"),
    ],
)
def test_bad_generator_options(env, options, key):
    with pytest.raises(ConfigError, match=key):
        env.load_tasks(TaskSourceConfig(source="generated", n=1, options=options))


def test_unknown_source_and_options(env):
    with pytest.raises(ConfigError, match="humaneval"):
        env.load_tasks(TaskSourceConfig(source="apps"))
    with pytest.raises(ConfigError, match="command_timeout"):
        CodeEnv(command_timeout=0)
    with pytest.raises(TypeError):
        CodeEnv(colour="red")


@pytest.mark.parametrize("name", ["code", "humaneval"])
def test_env_configs_compose_and_build(name):
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from agentkit.config import EnvConfig, to_object
    from agentkit.env import build_env

    conf = Path(__file__).resolve().parents[3] / "conf" / "env"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = to_object(OmegaConf.merge(OmegaConf.structured(EnvConfig), compose(config_name=name)))
    env = build_env(cfg)
    assert isinstance(env, CodeEnv) and cfg.name == "code"
    if name == "humaneval":
        assert len(env.load_tasks(cfg.tasks)) == 164
    else:
        assert cfg.tasks.source == "generated" and cfg.tasks.options["kinds"] == ["repo"]
