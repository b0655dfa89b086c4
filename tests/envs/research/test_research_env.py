"""The research env end to end: generated questions, the reference policy, baselines, question files."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from research_support import DOCS, generated

from agentkit.client import ScriptedClient
from agentkit.config import EnvConfig, TaskSourceConfig
from agentkit.env import build_env
from agentkit.envs.research import ResearchEnv
from agentkit.envs.research.corpus import Document, write_corpus
from agentkit.envs.research.verify import normalize
from agentkit.errors import ConfigError, DataError
from agentkit.loop import run_episode, run_many
from agentkit.records import Status
from agentkit.registry import ENVS

ROOT = Path(__file__).resolve().parents[3]


def _run_all(env: ResearchEnv, tasks, clients) -> list:
    return asyncio.run(run_many([(env, t, c) for t, c in zip(tasks, clients, strict=True)], concurrency=8))


def test_registered_by_name() -> None:
    assert ENVS.get("research") is ResearchEnv


def test_questions_cover_every_kind_with_recorded_evidence(env: ResearchEnv) -> None:
    tasks = env.load_tasks(generated(40))
    kinds = Counter((t.meta["type"], t.meta["hops"]) for t in tasks)
    assert kinds == {
        ("bridge", 1): 8,
        ("bridge", 2): 8,
        ("comparison", 2): 8,
        ("bridge", 3): 8,
        ("comparison", 3): 8,
    }
    for task in tasks:
        meta = task.meta
        assert meta["index"] == f"generated:encyclopedia-v1-d{DOCS}-s0"
        assert normalize(meta["answer"]) not in normalize(task.prompt)
        docs = {step["doc"] for step in meta["evidence"]}
        if meta["type"] == "bridge":
            assert len(meta["evidence"]) == meta["hops"] == len(docs)
            for step, following in zip(meta["evidence"], meta["evidence"][1:], strict=False):
                assert following["entity"] == step["value"]  # each hop bridges to the next entity
        else:
            assert len(docs) >= meta["hops"]
    assert len({t.prompt for t in tasks}) == len(tasks)


def test_reference_policy_scores_100_percent(env: ResearchEnv) -> None:
    tasks = env.load_tasks(generated(60, seed=11))
    trajectories = _run_all(env, tasks, [env.reference_solver(t) for t in tasks])
    failed = [(t.task.id, t.status, t.error, t.verdict) for t in trajectories if not t.passed]
    assert not failed
    for trajectory in trajectories:
        verdict = trajectory.verdict
        assert verdict.details["evidence_unread"] == [] and verdict.details["evidence_opened"]
        assert trajectory.stats.tool_errors == 0 and trajectory.stats.turns <= 12
        calls = Counter(c.name for m in trajectory.messages for c in m.tool_calls or [])
        assert calls["search"] >= 1 and calls["open"] >= 1
        assert trajectory.messages[-1].content.startswith("<think>Cross-check:")


def test_reference_policy_reads_long_documents_with_find(cache_dir: Path) -> None:
    """With small pages most facts are off the first page: the policy must find and open the right page."""
    env = ResearchEnv(cache_dir=str(cache_dir), page_chars=300, progress=False)
    tasks = env.load_tasks(generated(30, seed=4))
    trajectories = _run_all(env, tasks, [env.reference_solver(t) for t in tasks])
    assert [t.task.id for t in trajectories if not t.passed] == []
    offsets = [
        c.function.parsed_arguments().get("offset", 0)
        for t in trajectories
        for m in t.messages
        for c in m.tool_calls or []
        if c.name == "open"
    ]
    assert sum(o > 0 for o in offsets) >= 3
    assert any(c.name == "find" for t in trajectories for m in t.messages for c in m.tool_calls or [])


def test_answering_without_searching_scores_near_zero(env: ResearchEnv) -> None:
    """Model-free baselines: the most frequent answer of each answer kind (learned on other questions),
    and a client that answers at once."""
    learn = env.load_tasks(generated(200, seed=1))
    majority = {}
    for kind in {t.meta["answer_kind"] for t in learn}:
        answers = Counter(t.meta["answer"] for t in learn if t.meta["answer_kind"] == kind)
        majority[kind] = answers.most_common(1)[0][0]
    tasks = env.load_tasks(generated(100, seed=2))
    guesses = [
        ScriptedClient(
            [
                f"<think>No need to search.</think><answer>{majority.get(t.meta['answer_kind'], '1900')}"
                "</answer>"
            ]
        )
        for t in tasks
    ]
    trajectories = _run_all(env, tasks, guesses)
    assert all(t.status == Status.completed and t.stats.tool_calls == 0 for t in trajectories)
    assert sum(t.passed for t in trajectories) / len(tasks) <= 0.05
    immediate = _run_all(
        env, tasks[:20], [ScriptedClient(["<answer>I do not know</answer>"]) for _ in range(20)]
    )
    assert not any(t.passed for t in immediate) and all(t.reward == 0.0 for t in immediate)


def test_a_wrong_answer_after_real_research_fails(env: ResearchEnv) -> None:
    task = env.load_tasks(generated(1))[0]
    step = task.meta["evidence"][0]
    script = [
        f'<tool_call>{{"name": "search", "arguments": {{"query": "{step["query"]}"}}}}</tool_call>',
        f'<tool_call>{{"name": "open", "arguments": {{"id": "{step["doc"]}"}}}}</tool_call>',
        "<think>Answer: a guess.</think><answer>Nowhere Town</answer>",
    ]
    trajectory = asyncio.run(run_episode(env, task, ScriptedClient(script)))
    assert trajectory.status == Status.completed and not trajectory.passed and trajectory.reward == 0.0
    assert "does not match" in trajectory.verdict.reason
    assert trajectory.verdict.details["evidence_opened"] == [step["doc"]]
    episode = asyncio.run(env.open(task))
    assert "not correct" in episode.feedback(trajectory.verdict)


def test_generated_tasks_are_deterministic_and_splits_disjoint(env: ResearchEnv) -> None:
    first = env.load_tasks(generated(12, seed=5))
    assert [t.model_dump() for t in first] == [t.model_dump() for t in env.load_tasks(generated(12, seed=5))]
    assert first[:5] == env.load_tasks(generated(5, seed=5))
    train = env.load_tasks(
        TaskSourceConfig(
            source="generated", n=10, seed=5, split="train", test_fraction=0.3, options={"docs": DOCS}
        )
    )
    test = env.load_tasks(
        TaskSourceConfig(
            source="generated", n=10, seed=5, split="test", test_fraction=0.3, options={"docs": DOCS}
        )
    )
    assert not {t.id for t in train} & {t.id for t in test}


def test_generated_source_options_are_checked(env: ResearchEnv) -> None:
    with pytest.raises(ConfigError, match="tasks.options.doc:"):
        env.load_tasks(TaskSourceConfig(source="generated", n=1, options={"doc": 5}))
    with pytest.raises(ConfigError, match="hops must be 1, 2 or 3"):
        env.load_tasks(generated(1, hops=[4]))
    with pytest.raises(ConfigError, match="no question kind"):
        env.load_tasks(generated(1, hops=[1], types=["comparison"]))
    with pytest.raises(ConfigError, match="unknown question type"):
        env.load_tasks(generated(1, types=["yesno"]))
    with pytest.raises(ConfigError, match="tasks.source 'csv'"):
        env.load_tasks(TaskSourceConfig(source="csv"))
    with pytest.raises(ConfigError, match="env.options for 'research'"):
        build_env(EnvConfig(name="research", options={"page_size": 3}))


def test_the_cached_index_is_reused_and_rebuilt_when_it_does_not_match(tmp_path: Path) -> None:
    env = ResearchEnv(cache_dir=str(tmp_path), progress=False)
    env.load_tasks(generated(2))
    manifest = tmp_path / f"encyclopedia-v1-d{DOCS}-s0" / "manifest.json"
    built_at = manifest.stat().st_mtime_ns
    ResearchEnv(cache_dir=str(tmp_path), progress=False).load_tasks(generated(2))
    assert manifest.stat().st_mtime_ns == built_at
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "fingerprint": "stale"}))
    ResearchEnv(cache_dir=str(tmp_path), progress=False).load_tasks(generated(2))
    assert json.loads(manifest.read_text())["fingerprint"] != "stale"


def test_tasks_rebuild_their_index_from_the_reference_alone(tmp_path: Path, env: ResearchEnv) -> None:
    """A trajectory's task names its corpus; a fresh machine (empty cache) regenerates it to replay."""
    task = env.load_tasks(generated(1, seed=9))[0]
    fresh = ResearchEnv(cache_dir=str(tmp_path / "fresh"), progress=False)
    trajectory = asyncio.run(run_episode(fresh, task, fresh.reference_solver(task)))
    assert trajectory.passed


def _user_corpus(tmp_path: Path) -> Path:
    docs = [
        Document("mira", "Mira Telessa", "Mira Telessa is a chemist. She was born in Porvik in 1901."),
        Document("porvik", "Porvik", "Porvik is a port town on the Velle estuary. It was founded in 1410."),
        Document("velle", "Velle", "The Velle is a short river that reaches the sea at Porvik."),
    ]
    docs += [
        Document(f"n{i}", f"Note {i}", f"An unrelated note number {i} about weather.") for i in range(20)
    ]
    return tmp_path / "corpus.jsonl" if write_corpus(tmp_path / "corpus.jsonl", docs) else tmp_path


def test_user_question_files_over_a_user_corpus(tmp_path: Path) -> None:
    corpus = _user_corpus(tmp_path)
    questions = tmp_path / "questions.jsonl"
    rows = [
        {
            "qid": "q1",
            "question": "In which year was the birthplace of Mira Telessa founded?",
            "answer": 1410,
            "evidence": ["mira", "porvik"],
        },
        {"qid": "q2", "question": "Which estuary is Porvik on?", "answer": ["Velle estuary", "the Velle"]},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = ResearchEnv(corpus=str(corpus), cache_dir=str(tmp_path / "cache"), progress=False)
    tasks = env.load_tasks(
        TaskSourceConfig(source="jsonl", path=str(questions), fields={"id": "qid", "prompt": "question"})
    )
    assert [t.id for t in tasks] == ["q1", "q2"]
    assert tasks[0].meta["answer"] == "1410" and tasks[0].meta["evidence"] == [
        {"doc": "mira"},
        {"doc": "porvik"},
    ]
    assert tasks[1].meta["aliases"] == ["the Velle"]
    trajectory = asyncio.run(run_episode(env, tasks[0], env.reference_solver(tasks[0])))
    assert trajectory.passed and trajectory.verdict.details["evidence_opened"] == ["mira", "porvik"]
    assert env.reference_solver(tasks[1]) is None
    guess = asyncio.run(run_episode(env, tasks[1], ScriptedClient(["<answer>The Velle</answer>"])))
    assert guess.passed
    asyncio.run(env.aclose())


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x", "prompt": "Q?"}, "missing or empty field 'answer'"),
        (
            {"id": "x", "prompt": "Q?", "answer": "A", "evidence": ["nope"]},
            "evidence document 'nope' is not in",
        ),
        ({"id": "x", "prompt": "Q?", "answer": {"a": 1}}, "field 'answer' must be a string or a number"),
        ({"id": "x", "prompt": "Q?", "answer": "A", "aliases": "B"}, "field 'aliases' must be a list"),
    ],
)
def test_bad_question_rows_name_their_line(tmp_path: Path, row, message: str) -> None:
    corpus = _user_corpus(tmp_path)
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"id": "ok", "prompt": "Fine?", "answer": "yes"}) + "\n" + json.dumps(row) + "\n"
    )
    env = ResearchEnv(corpus=str(corpus), cache_dir=str(tmp_path / "cache"), progress=False)
    with pytest.raises(DataError, match=message) as info:
        env.load_tasks(TaskSourceConfig(source="jsonl", path=str(path)))
    assert str(info.value).startswith(f"{path}:2: ")
    with pytest.raises(ConfigError, match="need a corpus"):
        ResearchEnv(cache_dir=str(tmp_path / "cache")).load_tasks(
            TaskSourceConfig(source="jsonl", path=str(path))
        )


def test_conf_env_research_builds_the_env(tmp_path: Path, monkeypatch) -> None:
    from omegaconf import OmegaConf

    from agentkit.config import to_object

    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    schema = OmegaConf.structured(EnvConfig)
    cfg = to_object(OmegaConf.merge(schema, OmegaConf.load(ROOT / "conf" / "env" / "research.yaml")))
    env = build_env(cfg)
    assert isinstance(env, ResearchEnv) and env.cache_dir == tmp_path / "research"
    assert cfg.tasks.source == "generated" and cfg.tasks.options["docs"] >= 1000
    assert os.fspath(env.cache_dir).startswith(os.fspath(tmp_path))
