"""``agentkit export``: every format round-trips through its target's own loader to the same turns.

The run is a real ``agentkit synth`` (tool-use env, reference policy, teacher strategy: reflection and
injected mistakes, so there are tool errors, several calls and a dropped trajectory), plus hand-made
records for the corners (parallel calls, failed statuses, orphan tool output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.errors import AgentkitError, ConfigError
from agentkit.records import Message, Status, Task, ToolCall, Trajectory, Verdict
from agentkit.synth.atif import atif_messages, to_atif, validate_atif
from agentkit.synth.export import ExportConfig, export_run, iter_trajectories, run_files, to_sharegpt
from agentkit.toolcalls import split_reasoning

ROOT = Path(__file__).resolve().parents[2]


def _agentkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    done = _agentkit(
        "synth", "env=tooluse", "policy=reference", "strategy=teacher", "env.tasks.n=6", f"out={out}"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _hand_made(tmp_path: Path) -> Path:
    calls = [ToolCall.make("c0", "python", {"code": "print(1)"}), ToolCall.make("c1", "search", {"q": "x"})]
    records = [
        Trajectory(
            id="t/parallel",
            task=Task(id="p", env="code", prompt="do it", meta={"family": "fizz"}),
            messages=[
                Message(role="system", content="sys"),
                Message(role="user", content="do it"),
                Message(role="assistant", content="<think>two calls</think>", tool_calls=calls),
                Message(role="tool", tool_call_id="c0", name="python", content="1"),
                Message(role="tool", tool_call_id="c1", name="search", content="found"),
                Message(role="assistant", content="<think>ok</think>Done."),
            ],
            status=Status.completed,
            reward=1.0,
            verdict=Verdict(passed=True, reward=1.0, reason="tests pass"),
            completion_token_ids=[[5, 6, 7], [8, 9]],
            logprobs=[[-0.1, -0.2, -0.3], [-0.4, -0.5]],
        ),
        Trajectory(
            id="t/failed",
            task=Task(id="f", env="math", prompt="2+2?"),
            messages=[Message(role="user", content="2+2?"), Message(role="assistant", content="5")],
            status=Status.max_turns,
            reward=0.0,
            verdict=Verdict(passed=False, reason="wrong: 5 != 4"),
        ),
        Trajectory(
            id="t/no-answer",
            task=Task(id="n", env="math", prompt="?"),
            messages=[Message(role="user", content="?")],
            status=Status.model_error,
            error="server down",
        ),
    ]
    for record in records:
        record.provenance.strategy = "direct" if record.id != "t/parallel" else "teacher"
    records[0].task.abilities = ["function_calling"]
    records[1].abilities = ["self_correction"]
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(r.model_dump_json(exclude_none=True) + "\n" for r in records))
    return path


def _turns(messages: list[dict]) -> list[tuple]:
    """What must survive every round trip: roles, text, calls (name + parsed arguments), tool outputs."""
    out = []
    for m in messages:
        calls = tuple(
            (c["function"]["name"], json.dumps(json.loads(c["function"]["arguments"]), sort_keys=True))
            for c in m.get("tool_calls") or []
        )
        out.append((m["role"], m.get("content") or "", calls, m.get("tool_call_id")))
    return out


def test_atif_is_valid_and_rebuilds_the_same_turns(synth_run, tmp_path):
    (result,) = export_run(ExportConfig(run=str(synth_run), format="atif", out=str(tmp_path)))
    originals = {r["id"]: r for r in iter_trajectories(run_files(synth_run))}
    exported = [json.loads(line) for line in result.path.read_text().splitlines()]
    assert result.rows == len(originals) == len(exported) == 6
    for trajectory in exported:
        assert validate_atif(trajectory) == []
        original = originals[trajectory["session_id"]]
        assert _turns(atif_messages(trajectory)) == _turns(original["messages"])
        agents = [s for s in trajectory["steps"] if s["source"] == "agent"]
        said = [m for m in original["messages"] if m["role"] == "assistant"]
        for step, message in zip(agents, said, strict=True):  # the ATIF fields themselves, not only extra
            reasoning, visible = split_reasoning(message["content"])
            assert step["message"] == visible and step.get("reasoning_content", "") == reasoning
            del step["extra"]
        assert _turns(atif_messages(trajectory))[0] == _turns(original["messages"])[0]
        assert trajectory["extra"]["reward"] == original["reward"]
        assert trajectory["extra"]["verdict"] == original.get("verdict")
    tool_steps = [s for t in exported for s in t["steps"] if s.get("tool_calls")]
    assert tool_steps and all(s["observation"]["results"] for s in tool_steps)


def test_atif_validator_catches_what_harbor_rejects(tmp_path):
    good = to_atif(json.loads(_hand_made(tmp_path).read_text().splitlines()[0]))
    assert validate_atif(good) == []
    agent = next(s for s in good["steps"] if s.get("tool_calls"))
    assert agent["metrics"]["completion_token_ids"] == [5, 6, 7] and agent["reasoning_content"] == "two calls"
    broken = json.loads(json.dumps(good))
    broken["steps"][1]["step_id"] = 7
    broken["steps"][0]["reasoning_content"] = "system steps have none"
    broken["steps"][2]["observation"]["results"][0]["source_call_id"] = "nope"
    errors = validate_atif(broken)
    assert any("step_id: expected 2" in e for e in errors)
    assert any("only agent steps" in e for e in errors)
    assert any("'nope' is not a tool_call_id" in e for e in errors)
    assert validate_atif({**good, "surprise": 1}) and validate_atif({**good, "steps": []})
    assert validate_atif({**good, "steps": [{**good["steps"][0], "source": "robot"}]})


def test_sharegpt_loads_with_datasets_and_follows_llamafactory_turn_rules(synth_run, tmp_path):
    from datasets import load_dataset

    (result,) = export_run(ExportConfig(run=str(synth_run), format="sharegpt", out=str(tmp_path)))
    info = json.loads((tmp_path / "dataset_info.json").read_text())["agentkit"]
    assert info["formatting"] == "sharegpt" and info["tags"]["function_tag"] == "function_call"
    loaded = load_dataset("json", data_files=str(result.path), split="train")
    assert len(loaded) == result.rows == 6
    originals = {r["id"]: r for r in iter_trajectories(run_files(synth_run))}
    for row in loaded:
        turns = row["conversations"]
        odd, even = {"human", "observation"}, {"gpt", "function_call"}
        assert all(t["from"] in (odd if i % 2 == 0 else even) for i, t in enumerate(turns))
        assert len(turns) % 2 == 0
        original = originals[row["id"]]
        assert json.loads(row["tools"]) == [t["function"] for t in original["tools"]]
        calls = [m for m in original["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert sum(t["from"] == "function_call" for t in turns) == len(calls)
        groups: list[list[str]] = []  # the tool messages answering one assistant turn
        for previous, message in zip([None, *original["messages"]], original["messages"], strict=False):
            if message["role"] == "tool":
                if previous is None or previous["role"] != "tool":
                    groups.append([])
                groups[-1].append(message["content"])
        expected = [g[0] if len(g) == 1 else json.dumps(g) for g in groups]
        observed = [t["value"] for t in turns if t["from"] == "observation"]
        assert observed == expected[: len(observed)] and len(observed) >= len(expected) - 1


def test_sharegpt_parallel_calls_and_unanswerable_records(tmp_path):
    rows = [to_sharegpt(json.loads(line)) for line in _hand_made(tmp_path).read_text().splitlines()]
    parallel, failed, nothing = rows
    assert [t["from"] for t in parallel["conversations"]] == ["human", "function_call", "observation", "gpt"]
    call = parallel["conversations"][1]["value"]
    assert call.startswith("<think>two calls</think>[") and json.loads(
        call[len("<think>two calls</think>") :]
    ) == [{"name": "python", "arguments": {"code": "print(1)"}}, {"name": "search", "arguments": {"q": "x"}}]
    assert json.loads(parallel["conversations"][2]["value"]) == ["1", "found"]
    assert parallel["system"] == "sys"
    assert [t["from"] for t in failed["conversations"]] == ["human", "gpt"] and nothing is None


def test_parquet_and_datasets_round_trip_and_filters(synth_run, tmp_path):
    import pyarrow.parquet as pq
    from datasets import load_dataset, load_from_disk

    results = export_run(ExportConfig(run=str(synth_run), format="parquet,datasets", out=str(tmp_path)))
    originals = {r["id"]: r for r in iter_trajectories(run_files(synth_run))}
    table = pq.read_table(results[0].path)
    on_disk = load_from_disk(str(results[1].path))
    via_hf = load_dataset("parquet", data_files=str(results[0].path), split="train")
    assert table.num_rows == len(on_disk) == len(via_hf) == 6
    for rows in (table.to_pylist(), list(on_disk), list(via_hf)):
        for row in rows:
            original = originals[row["id"]]
            assert json.loads(row["record"]) == original
            assert _turns(row["messages"]) == _turns(original["messages"])
            assert row["status"] == original["status"] and row["reward"] == original["reward"]
    # Filters: min_reward, statuses, strategies, abilities.
    hand = _hand_made(tmp_path)

    def ids(**filters):
        (r,) = export_run(ExportConfig(run=str(hand), format="parquet", out=str(tmp_path / "f"), **filters))
        return sorted(pq.read_table(r.path).column("id").to_pylist())

    assert ids() == ["t/failed", "t/no-answer", "t/parallel"]
    assert ids(min_reward=0.5) == ["t/parallel"]
    assert ids(statuses=["max_turns", "model_error"]) == ["t/failed", "t/no-answer"]
    assert ids(strategies=["teacher"]) == ["t/parallel"]
    assert ids(abilities=["function_calling"]) == ["t/parallel"] and ids(abilities=["self_correction"]) == [
        "t/failed"
    ]
    assert ids(families=["fizz"]) == ["t/parallel"] and ids(envs=["math"]) == ["t/failed", "t/no-answer"]
    assert ids(envs=["math"], min_reward=0.0) == ["t/failed"]


def test_export_cli_and_its_errors(synth_run, tmp_path):
    done = _agentkit(
        "export", f"run={synth_run}", "format=[atif,sharegpt]", f"out={tmp_path}", "statuses=[completed]"
    )
    assert done.returncode == 0, done.stderr
    assert "atif: " in done.stdout and "sharegpt: " in done.stdout and (tmp_path / "atif.jsonl").exists()
    bad = _agentkit("export", f"run={synth_run}", "format=csv")
    assert bad.returncode == 2 and "format: unknown 'csv'" in bad.stderr and "Traceback" not in bad.stderr
    missing = _agentkit("export", f"run={tmp_path / 'nope'}")
    assert missing.returncode == 2 and "run: " in missing.stderr
    typo = _agentkit("export", f"run={synth_run}", "min_rewards=1")
    assert typo.returncode == 2 and "min_reward" in typo.stderr


def test_push_to_hub_offline_is_one_clear_line(synth_run, tmp_path):
    done = _agentkit(
        "export",
        f"run={synth_run}",
        "format=datasets",
        f"out={tmp_path}",
        "hub_repo=someone/agentkit-x",
        env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_unused"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if "agentkit export: error" in line]
    assert len(lines) == 1 and "hub_repo: cannot push" in lines[0] and "someone/agentkit-x" in lines[0]
    assert "Traceback" not in done.stderr
    with pytest.raises(ConfigError, match="hub_repo"):
        export_run(ExportConfig(run=str(synth_run), format="atif", hub_repo="someone/x"))
    assert issubclass(ConfigError, AgentkitError)
