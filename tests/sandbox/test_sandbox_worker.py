"""The session worker's protocol, driven directly (no sandbox): what a cell returns."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agentkit.envs.sandbox.base import WORKER_SOURCE


@pytest.fixture(scope="module")
def worker():
    proc = subprocess.Popen(
        [sys.executable, "-I", str(WORKER_SOURCE), "--cap", "1000", "--preload", "json,nosuchmod"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    ready = json.loads(proc.stdout.readline())
    counter = iter(range(10**6))

    def run(code: str) -> dict:
        cell_id = f"c{next(counter)}"
        proc.stdin.write((json.dumps({"id": cell_id, "code": code, "cpu": 30}) + "\n").encode())
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == cell_id
        return reply

    run.ready = ready
    yield run
    proc.kill()
    proc.wait()


def test_ready_reports_preloads(worker):
    assert worker.ready["ready"] and worker.ready["preloaded"] == ["json"]
    assert "nosuchmod" in worker.ready["preload_failed"]


def test_trailing_expression_is_echoed_and_state_kept(worker):
    assert worker("y = 20")["stdout"] == ""
    reply = worker("y + 1")
    assert reply["status"] == "ok" and reply["stdout"] == "21\n"
    assert worker("None")["stdout"] == ""


def test_errors_show_only_the_cells_frames(worker):
    reply = worker("def f():\n    return 1/0\nf()")
    assert reply["status"] == "error"
    assert "ZeroDivisionError" in reply["stderr"] and 'File "<cell-' in reply["stderr"]
    assert "worker.py" not in reply["stderr"]
    assert worker("def broken(:")["status"] == "error"


def test_system_exit_does_not_end_the_worker(worker):
    assert worker("raise SystemExit(3)")["exit_code"] == 3
    assert worker("import sys; sys.exit(0)")["status"] == "ok"
    assert worker("print('still here')")["stdout"] == "still here\n"


def test_memory_error_is_oom(worker):
    assert worker("raise MemoryError()")["status"] == "oom"


def test_fd_level_output_and_children_are_captured(worker):
    reply = worker("import os, subprocess\nos.write(1, b'raw\\n')\nsubprocess.run(['echo', 'child'])\n")
    assert "raw" in reply["stdout"] and "child" in reply["stdout"]


def test_output_is_capped_per_cell_and_flagged(worker):
    reply = worker("print('x' * 5000)")
    assert reply["stdout_truncated"] and len(reply["stdout"]) == 1000
    after = worker("print('ok')")
    assert after["stdout"] == "ok\n" and not after["stdout_truncated"]


def test_invalid_utf8_is_replaced(worker):
    reply = worker("import os\nn = os.write(1, b'\\xffok\\xfe')")
    assert reply["stdout"] == "\ufffdok\ufffd"


def test_closed_stdout_is_repaired(worker):
    worker("import os, sys; sys.stdout.close(); os.close(1)")
    assert worker("print('back')")["stdout"] == "back\n"
