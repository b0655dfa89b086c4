import json
import socket
from pathlib import Path

import pytest
from synth_runs import agentkit
from toy_synth_env import write_tasks

from agentkit.jsonl import read_jsonl
from agentkit.records import Trajectory
from agentkit.synth.report import PLOT_FILES
from agentkit.synth.writer import file_sha256

BASE = ["env=toy-synth", "policy=reference", "report.progress=false", "report.plots=false", "env.tasks.n=6"]


def dataset(out: Path) -> list[Trajectory]:
    return [t for path in sorted((out / "data").glob("train*.jsonl")) for t in read_jsonl(path, Trajectory)]


def test_synth_reference_writes_dataset_manifest_report_and_plots(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = agentkit(
        capsys, "synth", *BASE[:-2], "env.tasks.n=6", "n_samples=2", "strategy=teacher", f"out={out}"
    )
    assert code == 0, stdout
    rows = dataset(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["episodes_planned"] == 12 and manifest["counts"]["rollouts"] == 12
    assert (
        manifest["counts"]["curated"] == len(rows) == 12 - manifest["counts"]["dropped"].get("duplicate", 0)
    )
    assert manifest["schema_version"] == 1 and manifest["complete"] and manifest["strategy"] == "teacher"
    for info in manifest["files"]:
        assert file_sha256(out / info["path"]) == info["sha256"]
    assert file_sha256(out / manifest["raw"]["path"]) == manifest["raw"]["sha256"]
    row = rows[0]
    assert row.provenance.strategy == "teacher" and row.provenance.config_sha256 == manifest["config_sha256"]
    assert row.provenance.env_version == "toy-synth/3" and row.provenance.agentkit
    assert row.meta["mistake"]["exposed"] and row.meta["difficulty"] == 0.0
    report = json.loads((out / "report.json").read_text())
    assert report["pass_rate"] == 1.0 and report["tools"]["by_name"]["add"] >= 12
    assert [Path(p).name for p in report["plots"]] == ["report.png", *PLOT_FILES]
    for plot in report["plots"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert "pass rate" in stdout and "dataset: " in stdout


def test_rerun_skips_finished_work_and_refuses_another_config(capsys, tmp_path):
    out = tmp_path / "run"
    args = ["synth", *BASE, f"out={out}", "n_samples=2"]
    assert agentkit(capsys, *args)[0] == 0
    first = (out / "data" / "train-00000.jsonl").read_bytes()
    code, stdout, _ = agentkit(capsys, *args)
    assert code == 0 and "12 already done" in stdout
    assert json.loads((out / "report.json").read_text())["this_run"]["trajectories"] == 0
    assert (out / "data" / "train-00000.jsonl").read_bytes() == first
    # more samples: only the new ones run
    code, stdout, _ = agentkit(capsys, *args[:-1], "n_samples=3")
    assert code == 0 and "18 episodes, 12 already done" in stdout
    # curation changes do not invalidate rollouts
    code, stdout, _ = agentkit(capsys, *args, "curation.dedup.exact=false", "curation.dedup.near=false")
    assert code == 0 and len(dataset(out)) == 12
    code, stdout, stderr = agentkit(capsys, *args, "sampling.temperature=0.1")
    assert code == 2 and stderr.count("\n") == 1
    assert "holds a run with another config (sampling.temperature: 0.7 -> 0.1)" in stderr
    assert "resume=overwrite" in stderr
    code, stdout, _ = agentkit(capsys, *args, "sampling.temperature=0.1", "resume=overwrite")
    assert code == 0 and "0 already done" in stdout


def test_shards_split_the_work_deterministically(capsys, tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    assert agentkit(capsys, "synth", *BASE[:-1], "env.tasks.n=10", f"out={full}")[0] == 0
    for i in range(3):
        assert agentkit(capsys, "synth", *BASE[:-1], "env.tasks.n=10", f"out={split}", f"shard={i}/3")[0] == 0
    parts = [json.loads((split / f"manifest-shard{i}of3.json").read_text()) for i in range(3)]
    assert sum(p["counts"]["tasks"] for p in parts) == 10 and all(p["counts"]["tasks"] for p in parts)
    assert sorted(t.id for t in dataset(split)) == sorted(t.id for t in dataset(full))


def test_compressed_output(capsys, tmp_path):
    out = tmp_path / "run"
    assert (
        agentkit(capsys, "synth", *BASE, f"out={out}", "output.compression=zstd", "output.rows_per_file=4")[0]
        == 0
    )
    files = sorted((out / "data").iterdir())
    assert [p.name for p in files] == ["train-00000.jsonl.zst", "train-00001.jsonl.zst"]
    assert sum(len(read_jsonl(p, Trajectory)) for p in files) == 6


def test_eval_reference_policy(capsys, tmp_path):
    out = tmp_path / "eval"
    code, stdout, _ = agentkit(
        capsys, "eval", *BASE, f"out={out}", "n_samples=2", "ks=[1,2]", "bootstrap=200"
    )
    assert code == 0
    assert "pass@1: 1.0000" in stdout and "pass@2: 1.0000" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["tasks"] == 6 and report["metrics"]["samples"] == 12
    assert report["metrics"]["pass@1"] == {"value": 1.0, "bootstrap": [1.0, 1.0]}
    assert report["metrics"]["wilson"]["pass@1"][1] == 1.0 and report["metrics"]["wilson"]["pass@1"][0] > 0.7
    assert len(report["per_task"]) == 6 and report["per_task"][0]["status"] == {"completed": 2}
    assert json.loads((out / "manifest.json").read_text())["kind"] == "eval"
    code, _, stderr = agentkit(capsys, "synth", *BASE, f"out={out}")
    assert code == 2 and "holds an 'agentkit eval' run" in stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks=/nonexistent/tasks.jsonl"], "/nonexistent/tasks.jsonl: no such file"),
        (
            ["env.tasks.source=jsonl", "env.tasks.path=/nonexistent/t.jsonl"],
            "/nonexistent/t.jsonl: no such file",
        ),
        (
            ["strategy.name=nope"],
            "unknown strategy 'nope'; known: agentic_cot, agentic_cot_rewrite, branch, direct, reflect, rejection, teacher",
        ),
        (["strategy=reflect", "+strategy.options.max_tries=3"], "strategy.options for 'reflect'"),
        (["policy=oracle"], "policy: expected one of model, reference"),
        (["shard=3/2"], "shard: need 0 <= i < n"),
        (["env.name=no-such-env"], "unknown env 'no-such-env'"),
    ],
)
def test_bad_inputs_fail_fast_with_one_line(capsys, tmp_path, args, message):
    code, stdout, stderr = agentkit(capsys, "synth", *BASE, f"out={tmp_path / 'o'}", *args)
    assert code == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "o").exists()


def test_malformed_task_rows_name_file_and_line(capsys, tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"id": 1, "a": 2, "b": 3, "c": 4}, {"id": 2, "a": "x"}])
    code, _, stderr = agentkit(capsys, "synth", *BASE, f"out={tmp_path / 'o'}", f"tasks={tasks}")
    assert code == 2 and f"{tasks}:2: bad task row" in stderr and stderr.count("\n") == 1
    broken = write_tasks(tmp_path / "broken.jsonl", [{"id": 1, "a": 2, "b": 3, "c": 4}, "{not json"])
    code, _, stderr = agentkit(capsys, "synth", *BASE, f"out={tmp_path / 'o'}", f"tasks={broken}")
    assert code == 2 and f"{broken}:2:" in stderr and stderr.count("\n") == 1
    dup = write_tasks(tmp_path / "dup.jsonl", [{"id": 1, "a": 2, "b": 3, "c": 4}] * 2)
    code, _, stderr = agentkit(capsys, "synth", *BASE, f"out={tmp_path / 'o'}", f"tasks={dup}")
    assert code == 2 and "duplicate task id 'task-1'" in stderr


def test_unreachable_endpoint_fails_fast(capsys, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    code, _, stderr = agentkit(
        capsys,
        "synth",
        "env=toy-synth",
        "report.progress=false",
        f"model.base_url={url}",
        f"out={tmp_path / 'o'}",
    )
    assert (
        code == 2
        and f"model.base_url: cannot reach {url} (ConnectError" in stderr
        and stderr.count("\n") == 1
    )


def test_unknown_strategy_group_and_key_fail_at_compose_time(capsys, tmp_path):
    code, _, stderr = agentkit(capsys, "synth", *BASE, "strategy=nope", f"out={tmp_path / 'o'}")
    assert code == 2 and "Could not find 'strategy/nope'" in stderr and stderr.count("\n") == 1
    code, _, stderr = agentkit(capsys, "synth", *BASE, "curation.max_turn=3", f"out={tmp_path / 'o'}")
    assert code == 2 and "did you mean 'max_turns'?" in stderr and stderr.count("\n") == 1


def test_tasks_overlapping_an_evaluation_set_are_left_out(capsys, tmp_path):
    held_out = write_tasks(
        tmp_path / "eval.jsonl", [{"id": 100, "a": 6, "b": 8, "c": 13}]
    )  # task-3's question
    out = tmp_path / "run"
    code, stdout, stderr = agentkit(
        capsys,
        "synth",
        *BASE,
        f"out={out}",
        "curation.decontam.ngram=3",
        f"curation.decontam.sources=[{{tasks: {{source: jsonl, path: '{held_out}'}}}}]",
    )
    assert code == 0, stderr
    assert "(1 contaminated tasks skipped)" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["tasks_contaminated"] == 1
    assert sorted(t.task.id for t in dataset(out)) == ["task-0", "task-1", "task-2", "task-4", "task-5"]
