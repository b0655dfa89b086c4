import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit.errors import ConfigError
from agentkit.synth.writer import RunDir, Shard, config_diff


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True), st.integers(1, 7))
def test_shards_partition_task_ids(ids, count):
    owners = [[i for i in range(count) if Shard(i, count).owns(task_id)] for task_id in ids]
    assert all(len(o) == 1 for o in owners)


@pytest.mark.parametrize("text", ["1", "a/b", "2/2", "-1/3", "0/0"])
def test_bad_shard_specs(text):
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_torn_tail_is_cut_and_complete_lines_survive(tmp_path):
    run = RunDir(tmp_path)
    run.prepare({}, {"a": 1}, "h1", "auto")
    run.write_trajectory({"id": "x", "meta": {"key": "k1"}})
    run.write_trajectory({"id": "y", "meta": {"key": "k2"}})
    run.close()
    with open(run.raw_path, "ab") as raw:
        raw.write(b'{"id": "z", "meta": {"ke')
    assert run.prepare({}, {"a": 1}, "h1", "auto") == {"k1", "k2"}
    assert run.raw_path.read_bytes().endswith(b'"k2"}}\n')


def test_a_changed_config_is_refused_with_the_difference(tmp_path):
    run = RunDir(tmp_path)
    run.prepare({}, {"sampling": {"temperature": 0.7}, "seed": 0}, "h1", "auto")
    with pytest.raises(ConfigError, match=r"sampling.temperature: 0.7 -> 1.0.*resume=overwrite"):
        run.prepare({}, {"sampling": {"temperature": 1.0}, "seed": 0}, "h2", "auto")
    run.write_trajectory({"id": "x", "meta": {"key": "k1"}})
    run.close()
    assert run.prepare({}, {"sampling": {"temperature": 1.0}, "seed": 0}, "h2", "overwrite") == set()
    assert json.loads(run.run_file.read_text())["config_sha256"] == "h2"
    with pytest.raises(ConfigError, match="resume: expected"):
        run.prepare({}, {}, "h2", "maybe")


def test_dataset_shards_are_replaced_and_stale_ones_removed(tmp_path):
    run = RunDir(tmp_path)
    infos = run.write_dataset(iter([json.dumps({"i": i}) for i in range(5)]), rows_per_file=2)
    assert [i["rows"] for i in infos] == [2, 2, 1]
    infos = run.write_dataset(iter([json.dumps({"i": 0})]), rows_per_file=2)
    assert [p.name for p in run.data_files()] == ["train-00000.jsonl"] and infos[0]["rows"] == 1
    assert not list(run.data_dir.glob(".*.tmp"))
    assert run.write_dataset(iter([]))[0]["rows"] == 0


def test_config_diff_lists_changed_keys():
    assert (
        config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 4}) == "a.c: 2 -> 3; d: None -> 4"
    )


def test_arrow_order_lets_datasets_load_heterogeneous_rows_across_files(tmp_path):
    import datasets

    from agentkit.synth.writer import arrow_order

    def row(i, meta, tools):
        return {
            "id": f"r{i}",
            "task": {"id": f"t{i}", "meta": meta},
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "tools": [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in tools],
        }

    python = ("python", {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]})
    search = (
        "search",
        {"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}},
    )
    rows = [row(i, {"kind": "arith", "level": 1}, [python]) for i in range(6)]
    rows += [
        row(6, {"kind": "system", "values": {"x": "1"}, "level": 2.5}, [python, search]),
        row(7, {"kind": "arith", "answer": "3"}, [search]),
        row(8, {"kind": "arith", "answer": 3}, [python]),
    ]
    order = arrow_order(rows)
    assert order[:2] == [0, 6] and sorted(order) == list(range(9))
    run = RunDir(tmp_path)
    run.write_dataset(iter(json.dumps(rows[i]) for i in order), rows_per_file=3)
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "data" / "*.jsonl"), split="train")
    loaded = {r["id"]: r for r in ds}
    assert len(loaded) == 9
    assert loaded["r7"]["tools"][0]["function"]["parameters"]["properties"] == search[1]["properties"]
    assert loaded["r6"]["task"]["meta"]["values"] == {"x": "1"}
    # the unordered rows, written the same way, are what fails without it
    plain = RunDir(tmp_path / "plain")
    plain.write_dataset(iter(json.dumps(r) for r in rows), rows_per_file=3)
    with pytest.raises(Exception):  # noqa: B017 - datasets wraps the cast error
        datasets.load_dataset("json", data_files=str(tmp_path / "plain" / "data" / "*.jsonl"), split="train")
