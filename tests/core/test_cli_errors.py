"""One error boundary: every ``agentkit`` command turns bad input into one line on stderr and exit code 2.

The commands come from the command table at test time, so a new command is covered as soon as it exists:
each gets a misspelled key (composition) and, where one is listed below, a bad value that only the
command itself can reject (an ``AgentkitError`` raised at run time).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.cli import COMMANDS, main

AGENTKIT = str(Path(sys.executable).with_name("agentkit"))

# A bad value per command, rejected by the command's own code (not by Hydra) before anything starts,
# and what its one line must say.
BAD_VALUES: dict[str, tuple[list[str], str]] = {
    "serve": (["engine=nope"], "engine: unknown engine 'nope'"),
    "synth": (["tasks=/missing/tasks.jsonl"], "/missing/tasks.jsonl: no such file"),
    "eval": (["policy=nope"], "policy: expected one of"),
    "train": (["trainer.bf16=maybe"], "trainer.bf16: expected auto, true or false"),
    "demo": (["mix.teacher_share=2"], "mix.teacher_share must be within [0, 1]"),
    "sandbox exec": (["backend=nope", "code=1"], "unknown sandbox 'nope'"),
    "sandbox check": (["checks=[nope]"], "checks: unknown check(s) ['nope']"),
    "index": (["corpus=/missing.jsonl"], "/missing.jsonl: no such corpus file"),
}
REQUIRED = {"index": ["out=idx"]}
"""Mandatory keys a command needs before it can get as far as the bad value."""


def _run(command: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AGENTKIT, *command.split(), *REQUIRED.get(command, []), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "", **env},
    )


def _assert_one_line(code: object, stdout: str, stderr: str, command: str) -> None:
    assert code == 2, (code, stderr[-2000:])
    assert "Traceback" not in stderr + stdout
    assert len(stderr.splitlines()) == 1 and stderr.endswith("\n"), stderr
    assert stderr.startswith(f"agentkit {command}: error: ")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_value_is_one_line_and_exit_2(command, tmp_path):
    """A real subprocess per command; a command added later without an entry gets a misspelled key."""
    args, expected = BAD_VALUES.get(command, (["definitely_not_a_key=1"], "definitely_not_a_key"))
    done = _run(command, args, tmp_path)
    _assert_one_line(done.returncode, done.stdout, done.stderr, command)
    assert expected in done.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_misspelled_key_is_one_line_naming_the_key(command, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), *REQUIRED.get(command, []), "definitely_not_a_key=1"])
    out = capsys.readouterr()
    _assert_one_line(exit_info.value.code, out.out, out.err, command)
    assert "definitely_not_a_key: Key 'definitely_not_a_key' not in" in out.err


def test_nearest_valid_key_is_suggested(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit):
        main(["serve", "prot=9000"])
    assert "prot: Key 'prot' not in 'ServeConfig'; did you mean 'port'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "env.options.answer_fromat=[boxed]"])
    assert (
        "; to add a key to this mapping, write +env.options.answer_fromat=[boxed]" in capsys.readouterr().err
    )


def test_hydra_full_error_shows_the_stack(tmp_path):
    done = _run("sandbox exec", ["backend=nope", "code=1"], tmp_path, HYDRA_FULL_ERROR="1")
    assert (
        done.returncode != 0
        and "Traceback" in done.stderr
        and "ConfigError: unknown sandbox 'nope'" in done.stderr
    )
