"""Task sources: JSONL, Parquet and local ``datasets`` directories; field mapping, load-time errors
with ``path:line``, deterministic splits and sampling; and the env YAML configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.config import EnvConfig, TaskSourceConfig
from agentkit.env import build_env
from agentkit.envs.math import MathEnv
from agentkit.envs.tasks import load_task_rows, split_of
from agentkit.envs.tooluse import ToolUseEnv
from agentkit.errors import ConfigError, DataError

ROWS = [
    {"qid": f"q{i}", "question": f"What is {i} + {i}?", "solution": str(2 * i), "source_note": "toy"}
    for i in range(40)
]
FIELDS = {"id": "qid", "prompt": "question", "answer": "solution"}
CONF = Path(__file__).resolve().parents[2] / "conf" / "env"


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = _write_jsonl(tmp_path / "tasks.jsonl", ROWS)
    parquet = tmp_path / "tasks.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    hf = tmp_path / "hf"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(hf))
    return {"jsonl": jsonl, "parquet": parquet, "hf": hf}


def test_every_file_source_gives_the_same_tasks(sources):
    loaded = {}
    for kind, path in sources.items():
        cfg = TaskSourceConfig(source=kind, path=str(path), fields=FIELDS)
        loaded[kind] = MathEnv().load_tasks(cfg)
    first = loaded["jsonl"]
    assert [t.model_dump() for t in loaded["parquet"]] == [t.model_dump() for t in first]
    assert [t.model_dump() for t in loaded["hf"]] == [t.model_dump() for t in first]
    task = first[3]
    assert (task.id, task.prompt, task.env) == ("q3", "What is 3 + 3?", "math")
    assert task.meta == {"answer": "6", "source_note": "toy"}


def test_splits_and_sampling_are_deterministic(sources):
    def load(**kw):
        return load_task_rows(
            TaskSourceConfig(source="jsonl", path=str(sources["jsonl"]), fields=FIELDS, **kw),
            "math",
            required=("prompt", "answer"),
        )

    train, test = load(split="train", test_fraction=0.25), load(split="test", test_fraction=0.25)
    assert len(train) + len(test) == len(ROWS) and 3 <= len(test) <= 20
    assert {t.id for t in train}.isdisjoint({t.id for t in test})
    assert all(split_of(t.id, 0.25) == "test" for t in test)
    sample = [t.id for t in load(n=5, seed=1)]
    assert sample == [t.id for t in load(n=5, seed=1)] and sample != [t.id for t in load(n=5, seed=2)]
    assert sample == sorted(sample, key=lambda i: int(i[1:]))  # source order is kept
    with pytest.raises(ConfigError, match="tasks.split"):
        load(split="validation")


def test_bad_rows_fail_at_load_time_with_path_and_line(tmp_path):
    env = MathEnv()
    cases = [
        ([{"question": "q", "solution": "1"}, {"question": "", "solution": "2"}], 2, "question"),
        (
            [{"qid": "a", "question": "q", "solution": "1"}, {"qid": "a", "question": "r", "solution": "2"}],
            2,
            "duplicate task id 'a'",
        ),
        ([{"question": "q", "solution": "1"}, {"question": "q2"}], 2, "missing or empty field 'solution'"),
        ([{"question": "q", "solution": ["not", "a", "string"]}], 1, "'answer' must be a string or a number"),
        ([{"question": "q", "solution": "1"}, ["not an object"]], 2, "a row must be an object"),
    ]
    for number, (rows, line, message) in enumerate(cases):
        path = _write_jsonl(tmp_path / f"bad{number}.jsonl", rows)
        with pytest.raises(DataError, match=message) as excinfo:
            env.load_tasks(TaskSourceConfig(source="jsonl", path=str(path), fields=FIELDS))
        assert str(excinfo.value).startswith(f"{path}:{line}: ")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "solution": "1"}\n{"question": \n')
    with pytest.raises(DataError, match=rf"{broken}:2: invalid JSON"):
        env.load_tasks(TaskSourceConfig(source="jsonl", path=str(broken), fields=FIELDS))
    with pytest.raises(DataError, match="no such file"):
        env.load_tasks(TaskSourceConfig(source="parquet", path=str(tmp_path / "missing.parquet")))
    with pytest.raises(ConfigError, match="tasks.path"):
        env.load_tasks(TaskSourceConfig(source="jsonl"))


def test_tooluse_rows_are_checked_when_loaded(tmp_path):
    good = {
        "prompt": "Make the folder /a.",
        "initial_state": {"fs": {"dirs": ["/"], "files": {}}},
        "expected_state": {"fs": {"dirs": ["/", "/a"], "files": {}}},
        "solution": [{"name": "make_dir", "arguments": {"path": "/a"}}],
    }
    bad_domain = {**good, "initial_state": {"bank": {}}}
    path = _write_jsonl(tmp_path / "tool.jsonl", [good, bad_domain])
    with pytest.raises(DataError, match=rf"{path}:2: unknown domain 'bank'"):
        ToolUseEnv().load_tasks(TaskSourceConfig(source="jsonl", path=str(path)))
    path = _write_jsonl(tmp_path / "tool_ok.jsonl", [good])
    (task,) = ToolUseEnv().load_tasks(TaskSourceConfig(source="jsonl", path=str(path)))
    assert task.id == "tool_ok-1" and task.meta["check"] == "state"
    assert ToolUseEnv().reference_solver(task) is not None


def test_env_configs_compose_and_build():
    from omegaconf import OmegaConf

    from agentkit.config import to_object

    for name, expected_env in [("math", "math"), ("tooluse", "tooluse"), ("bfcl", "tooluse")]:
        merged = OmegaConf.merge(OmegaConf.structured(EnvConfig), OmegaConf.load(CONF / f"{name}.yaml"))
        cfg = to_object(merged)
        assert isinstance(cfg, EnvConfig) and cfg.name == expected_env
        assert build_env(cfg).name == expected_env
    with pytest.raises(Exception, match="not_a_key"):
        OmegaConf.merge(OmegaConf.structured(EnvConfig), {"tasks": {"not_a_key": 1}})
    with pytest.raises(ConfigError, match="env.options"):
        build_env(EnvConfig(name="math", options={"answer_fromat": ["boxed"]}))


@pytest.mark.parametrize(
    ("env", "source", "typo", "nearest"),
    [
        ("math", "generated", "level", "levels"),
        ("tooluse", "generated", "domain", "domains"),
        ("tooluse", "bfcl", "category", "categories"),
        ("research", "generated", "doc", "docs"),
        ("research", "jsonl", "hf_splt", "hf_split"),
        ("code", "generated", "kind", "kinds"),
        ("code", "repo", "pakage", "package"),
    ],
)
def test_a_task_option_typo_names_the_key_and_the_nearest_one(env, source, typo, nearest):
    """Every env checks its task options the same way, before it reads or generates anything."""
    built = build_env(EnvConfig(name=env))
    with pytest.raises(ConfigError) as caught:
        built.load_tasks(TaskSourceConfig(source=source, path="unused", options={typo: 1}))
    message = str(caught.value)
    assert message.startswith(f"env.tasks.options.{typo}: unknown ")
    assert f"did you mean '{nearest}'?" in message and "\n" not in message
