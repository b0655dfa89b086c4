import json

import pytest

from agentkit.paths import atomic_open, atomic_write_json, atomic_write_text, cache_dir, cache_root


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path / "cache"))
    assert (
        cache_root() == tmp_path / "cache" and cache_dir("models", "x") == tmp_path / "cache" / "models" / "x"
    )
    monkeypatch.delenv("AGENTKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "agentkit"


def test_atomic_write_replaces_whole_files_and_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1} and path.read_text().startswith('{\n  "a"')
    atomic_write_text(path, "second", fsync=False)
    assert path.read_text() == "second" and [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half a new fi")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
