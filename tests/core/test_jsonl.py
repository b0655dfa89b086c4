import pytest

from agentkit.errors import DataError
from agentkit.jsonl import JsonlWriter, read_jsonl, repair_torn_tail, write_jsonl
from agentkit.records import Task


def _tasks(n):
    return [Task(id=f"t{i}", env="math", prompt=f"q{i}") for i in range(n)]


@pytest.mark.parametrize("name", ["tasks.jsonl", "tasks.jsonl.zst"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    assert write_jsonl(path, _tasks(5)) == 5
    assert read_jsonl(path, Task) == _tasks(5)


def test_bad_line_names_path_and_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"id": "a", "env": "m", "prompt": "p"}\n\n{"id": "b", "env": "m"}\n')
    with pytest.raises(DataError) as info:
        read_jsonl(path, Task)
    assert str(info.value).startswith(f"{path}:3: not a valid Task: prompt")


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        '{"id": "a", "env": "m", "prompt": "p"}\n{oops}\n{"id": "c", "env": "m", "prompt": "p"}\n'
    )
    with pytest.raises(DataError, match=r"tasks.jsonl:2: invalid JSON"):
        read_jsonl(path, Task)


def test_torn_tail_is_reported_then_repaired(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path) as writer:
        for task in _tasks(3):
            writer.write(task)
    with open(path, "ab") as handle:
        handle.write(b'{"id": "t3", "env": "ma')  # a crash mid-write
    with pytest.raises(DataError, match="torn last line"):
        read_jsonl(path, Task)
    assert read_jsonl(path, Task, skip_torn_tail=True) == _tasks(3)
    assert repair_torn_tail(path) > 0
    assert read_jsonl(path, Task) == _tasks(3)
    with JsonlWriter(path) as writer:  # appending after repair keeps every line whole
        writer.write(_tasks(4)[3])
    assert read_jsonl(path, Task) == _tasks(4)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl", Task)
