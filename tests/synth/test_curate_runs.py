"""``agentkit curate`` across runs: planted cross-shard duplicates go, nothing else does, whatever the order."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from synth_runs import toy_config

from agentkit.cli import main
from agentkit.synth.merge import INDEX_BYTES
from agentkit.synth.pipeline import run


def shard_run(out: Path, shard: str) -> Path:
    run("synth", toy_config(out, 16, shard=shard))
    return out


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(path.glob("*.jsonl")) for line in p.read_text().splitlines()]


def copy_of(record: dict, text_change=None) -> dict:
    """The same conversation under another sample of the same task (so it ranks after the original)."""
    record = json.loads(json.dumps(record))
    sample = record["meta"]["sample"] + 10
    record["meta"]["sample"] = sample
    record["id"] = f"{record['task']['env']}/{record['task']['id']}/s{sample}"
    if text_change:
        text_change(record)
    return record


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two shards of one synth run, with duplicates of shard A's trajectories planted in shard B."""
    import toy_synth_env

    monkeypatch = pytest.MonkeyPatch()
    toy_synth_env.register(monkeypatch)
    try:
        root = tmp_path_factory.mktemp("shards")
        a, b = shard_run(root / "a", "0/2"), shard_run(root / "b", "1/2")
    finally:
        monkeypatch.undo()
    a_rows, b_rows = rows(a / "data"), rows(b / "data")
    assert a_rows and b_rows and not {r["task"]["id"] for r in a_rows} & {r["task"]["id"] for r in b_rows}

    def punctuation(record):  # other text, the same words: a near duplicate, not an exact one
        record["messages"][-1]["content"] = record["messages"][-1]["content"].replace(".", "!")

    exact = [copy_of(r) for r in a_rows[:3]]
    near = [copy_of(r, punctuation) for r in a_rows[3:5]]
    assert all(
        n["messages"][-1]["content"] != o["messages"][-1]["content"]
        for n, o in zip(near, a_rows[3:5], strict=True)
    )
    planted = b / "data" / "train-shard1of2-00000.jsonl"
    with open(planted, "a") as handle:
        for record in exact + near:
            handle.write(json.dumps(record) + "\n")
    return {
        "a": a,
        "b": b,
        "originals": {r["id"] for r in a_rows + b_rows},
        "exact": {r["id"] for r in exact},
        "near": {r["id"] for r in near},
    }


def curate(tmp: Path, *args: str) -> Path:
    out = tmp / "merged"
    main(["curate", *args, f"out={out}", "progress=false"])
    return out


def test_planted_cross_shard_duplicates_and_only_those_are_removed(shards, tmp_path, capsys):
    out = curate(tmp_path, str(shards["a"]), str(shards["b"]))
    kept = {r["id"] for r in rows(out / "data")}
    assert kept == shards["originals"]
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert {d["id"] for d in dropped if d["reason"] == "duplicate"} == shards["exact"]
    assert {d["id"] for d in dropped if d["reason"] == "near_duplicate"} == shards["near"]
    assert len(dropped) == 5
    for entry in dropped:  # each points at the original it copies: same task, sample 10 lower
        task_sample = entry["id"].rsplit("/s", 1)
        assert entry["duplicate_of"] == f"{task_sample[0]}/s{int(task_sample[1]) - 10}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {
        "input": len(kept) + 5,
        "kept": len(kept),
        "dropped": {"duplicate": 3, "near_duplicate": 2},
    }
    assert manifest["index_bytes_per_trajectory"] == INDEX_BYTES + 8 * 5  # 5 LSH bands at threshold 0.9
    assert f"{len(kept)} of {len(kept) + 5} trajectories kept" in capsys.readouterr().out


def test_the_result_does_not_depend_on_input_or_line_order(shards, tmp_path):
    forward = curate(tmp_path / "1", str(shards["a"]), str(shards["b"]))
    backward = curate(tmp_path / "2", str(shards["b"]), str(shards["a"]))
    for name in ("dropped.jsonl", "data/train-00000.jsonl"):
        assert (forward / name).read_bytes() == (backward / name).read_bytes()

    shuffled = tmp_path / "shuffled"  # the same records, lines shuffled, under other file names
    for side in ("a", "b"):
        lines = [
            line
            for p in sorted((shards[side] / "data").glob("*.jsonl"))
            for line in p.read_text().splitlines()
        ]
        random.Random(7).shuffle(lines)
        (shuffled / side).mkdir(parents=True)
        (shuffled / side / f"z-{side}.jsonl").write_text("\n".join(lines) + "\n")
    other = curate(tmp_path / "3", str(shuffled / "b"), str(shuffled / "a"))
    assert {r["id"] for r in rows(other / "data")} == {r["id"] for r in rows(forward / "data")}
    key = lambda line: (line["id"], line["reason"], line.get("duplicate_of"))  # noqa: E731
    read = lambda path: sorted(map(key, map(json.loads, (path / "dropped.jsonl").read_text().splitlines())))  # noqa: E731
    assert read(other) == read(forward)


def test_per_task_cap_and_decontamination_apply_across_runs(shards, tmp_path):
    out = curate(
        tmp_path,
        str(shards["a"]),
        str(shards["b"]),
        "curation.max_per_task=1",
        "curation.dedup.near=false",
        "curation.dedup.exact=false",
        "curation.decontam.sources=[{env: toy-synth, tasks: {n: 3}}]",
    )
    kept = rows(out / "data")
    tasks = [r["task"]["id"] for r in kept]
    assert len(tasks) == len(set(tasks))
    assert not {"task-0", "task-1", "task-2"} & set(tasks)
    every_task = {r["task"]["id"] for p in ("a", "b") for r in rows(shards[p] / "data")}
    assert set(tasks) == every_task - {"task-0", "task-1", "task-2"}
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert {d["reason"] for d in dropped} == {"per_task_cap", "contaminated"}
    assert all(
        d["why"].startswith("contaminated: 100% of toy-synth/task-")
        for d in dropped
        if d["reason"] == "contaminated"
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["curate", str(tmp_path / "missing"), f"out={tmp_path / 'o'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "no such file" in err[0]


def test_an_existing_output_is_not_replaced_without_overwrite(shards, tmp_path, capsys):
    out = curate(tmp_path, str(shards["a"]))
    with pytest.raises(SystemExit) as exit_:
        main(["curate", str(shards["a"]), f"out={out}", "progress=false"])
    assert exit_.value.code == 2 and "overwrite=true" in capsys.readouterr().err
    main(["curate", str(shards["b"]), f"out={out}", "progress=false", "overwrite=true"])
    assert {r["id"] for r in rows(out / "data")} == {r["id"] for r in rows(shards["b"] / "data")}
    shutil.rmtree(out)


def test_the_last_shard_of_a_run_curates_across_all_shards(tmp_path, capsys):
    out = tmp_path / "run"
    shard_run(out, "0/2")
    assert "1 of 2 shards still to finish" in capsys.readouterr().out
    assert not (out / "merged").exists()
    shard_run(out, "1/2")
    manifest = json.loads((out / "merged" / "manifest.json").read_text())
    shards = [
        json.loads((out / f"manifest-shard{i}of2.json").read_text())["counts"]["curated"] for i in range(2)
    ]
    assert manifest["counts"]["input"] == sum(shards) == manifest["counts"]["kept"]
    assert {r["id"] for r in rows(out / "merged" / "data")} == {r["id"] for r in rows(out / "data")}


def test_a_line_that_is_not_a_trajectory_names_its_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "task": {"id": "t"}, "messages": []}\n{"id": "y"}\n')
    with pytest.raises(SystemExit) as exit_:
        main(["curate", str(bad), f"out={tmp_path / 'o'}", "progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert f"{bad}:2" in err[0] and "needs id, task.id and messages" in err[0]
