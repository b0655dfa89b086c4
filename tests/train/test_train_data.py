"""Data sources, filters, the chat-template check and weighted mixtures (no model needed)."""

import json
import logging

import pytest

from agentkit.chat_template import template_sha256
from agentkit.errors import ConfigError, DataError
from agentkit.jsonl import write_jsonl
from agentkit.train.config import DataConfig, SourceConfig
from agentkit.train.corpus import toy_trajectories
from agentkit.train.data import build_train_data, resolve_sources
from agentkit.train.render import IGNORE
from agentkit.train.sources import synth_shards

SFT = dict(loss_roles=["assistant"], loss_on_template=False)


def _build(tokenizer, **kwargs):
    return build_train_data(DataConfig(**{**SFT, **kwargs}), tokenizer, progress=False)


def test_synth_dir_reads_curated_shards_and_filters(tiny_tokenizer, toy_synth):
    assert [p.name for p in synth_shards(toy_synth)] == ["train-00000.jsonl", "train-00001.jsonl.zst"]
    data = _build(tiny_tokenizer, path=str(toy_synth))
    stats = data.stats["main"]
    assert stats.read == 240 and stats.kept == 210 and stats.skipped["not passed"] == 30
    assert len(data.dataset) == 210 and stats.no_template_hash == 0
    row = data.dataset[0]
    assert len(row["input_ids"]) == len(row["labels"]) and any(label != IGNORE for label in row["labels"])
    assert sum(label != IGNORE for label in row["labels"]) < len(row["labels"]) / 2  # only assistant turns


def test_status_and_verdict_filters_are_configurable(tiny_tokenizer, toy_synth):
    data = build_train_data(
        DataConfig(path=str(toy_synth), sources={"main": SourceConfig(require_passed=False)}, **SFT),
        tiny_tokenizer,
        progress=False,
    )
    assert data.stats["main"].kept == 240
    with pytest.raises(DataError, match="no trainable examples .*status=completed: 240"):
        _build(tiny_tokenizer, sources={"main": SourceConfig(path=str(toy_synth), statuses=["max_turns"])})
    with pytest.raises(ConfigError, match="statuses: unknown status 'finished'"):
        resolve_sources(DataConfig(sources={"main": SourceConfig(path="x", statuses=["finished"])}))


def test_template_mismatch_is_refused_with_the_line(tiny_tokenizer, tmp_path):
    path = tmp_path / "other.jsonl"
    write_jsonl(path, toy_trajectories(3, template_sha256=template_sha256("{{ messages }}")))
    with pytest.raises(DataError, match=r"other\.jsonl:1: .*data\.allow_template_mismatch=true"):
        _build(tiny_tokenizer, path=str(path))
    data = _build(tiny_tokenizer, path=str(path), allow_template_mismatch=True)
    assert data.stats["main"].template_mismatch == 3 and len(data.dataset) == 3
    assert any("another chat template" in w for w in data.warnings)


def test_records_without_a_template_hash_pass_with_a_warning(tiny_tokenizer, tmp_path, caplog):
    path = tmp_path / "nohash.jsonl"
    write_jsonl(path, toy_trajectories(4, template_sha256=None))
    with caplog.at_level(logging.WARNING, logger="agentkit.train"):
        data = _build(tiny_tokenizer, path=str(path))
    assert data.stats["main"].no_template_hash == 4 and len(data.dataset) == 4
    assert "carry no chat_template_sha256" in caplog.text


def test_bad_rows_name_file_and_line(tiny_tokenizer, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        _build(tiny_tokenizer, path=str(bad))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"messages": [{"role": "robot", "content": "x"}]}\n')
    with pytest.raises(DataError, match=r"wrong\.jsonl:1: messages\[0\]\.role"):
        _build(tiny_tokenizer, path=str(wrong))
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match=r"keys\.jsonl:1: no 'text' or 'messages' field \(keys: body\)"):
        _build(tiny_tokenizer, path=str(keys))
    with pytest.raises(ConfigError, match="data.sources.main.path: no such file"):
        _build(tiny_tokenizer, path=str(tmp_path / "missing.jsonl"))


def test_torn_last_line_is_skipped(tiny_tokenizer, tmp_path):
    path = tmp_path / "torn.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "thr')
    assert len(_build(tiny_tokenizer, path=str(path), loss_roles=["assistant"]).dataset) == 2


def test_parquet_hf_dir_and_sharegpt_sources(tiny_tokenizer, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    conversations = [
        {"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(6)
    ]
    pq.write_table(pa.Table.from_pylist(conversations), tmp_path / "conv.parquet")
    DatasetDict({"train": Dataset.from_list([{"text": f"doc {i}"} for i in range(5)])}).save_to_disk(
        tmp_path / "hf"
    )
    sharegpt = tmp_path / "sharegpt.jsonl"
    sharegpt.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "answer"}]})
        + "\n"
    )
    assert len(_build(tiny_tokenizer, path=str(tmp_path / "conv.parquet")).dataset) == 6
    assert len(_build(tiny_tokenizer, path=str(tmp_path / "hf")).dataset) == 5
    row = _build(tiny_tokenizer, path=str(sharegpt)).dataset[0]
    trained = tiny_tokenizer.decode(
        [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE],
        skip_special_tokens=False,
    )
    assert trained == "answer<|end_of_text|>"
    with pytest.raises(ConfigError, match="split: 'test' is not a split"):
        build_train_data(
            DataConfig(sources={"main": SourceConfig(path=str(tmp_path / "hf"), split="test")}, **SFT),
            tiny_tokenizer,
            progress=False,
        )


def test_mixture_follows_weights_and_the_shorthand(tiny_tokenizer, toy_synth):
    cfg = DataConfig(
        path=str(toy_synth),
        loss_roles=["system", "user", "assistant"],
        loss_on_template=True,
        sources={
            "main": SourceConfig(weight=0.75),
            "general": SourceConfig(kind="generated", generator="commonsense", n=2000, weight=0.25),
        },
    )
    data = build_train_data(cfg, tiny_tokenizer, progress=False)
    assert data.weights == {"main": 0.75, "general": 0.25}
    n = len(data.dataset)
    conversations = sum(
        "<|User|>" in tiny_tokenizer.decode(ids, skip_special_tokens=False)
        for ids in data.dataset["input_ids"]
    )
    assert (
        210 <= n <= 330 and abs(conversations / n - 0.75) < 0.08
    )  # first_exhausted: trajectories run out first
    assert resolve_sources(DataConfig(path="a.jsonl,b.jsonl")).keys() == {"main0", "main1"}
    with pytest.raises(ConfigError, match="data: no sources"):
        resolve_sources(DataConfig())
    with pytest.raises(ConfigError, match="data.sources.x.generator: unknown corpus 'wiki'"):
        resolve_sources(DataConfig(sources={"x": SourceConfig(kind="generated", generator="wiki")}))


def test_streaming_yields_the_same_examples(tiny_tokenizer, toy_synth):
    eager = _build(tiny_tokenizer, path=str(toy_synth))
    stream = build_train_data(
        DataConfig(path=str(toy_synth), streaming=True, shuffle_buffer=1, **SFT),
        tiny_tokenizer,
        progress=False,
    )
    rows = list(stream.dataset)
    assert len(rows) == len(eager.dataset)
    assert sorted(map(tuple, (r["input_ids"] for r in rows))) == sorted(
        map(tuple, eager.dataset["input_ids"])
    )


def test_truncation_drops_examples_with_nothing_left_to_train(tiny_tokenizer, toy_synth):
    data = build_train_data(
        DataConfig(path=str(toy_synth), **SFT), tiny_tokenizer, truncate_at=64, progress=False
    )
    stats = data.stats["main"]
    assert stats.truncated > 0 and stats.skipped["nothing to train on within max_length"] > 0
    assert all(len(ids) <= 64 for ids in data.dataset["input_ids"])
