"""Host-side workspace confinement (envs.sandbox.files), without a sandbox."""

from __future__ import annotations

import os

import pytest

from agentkit.envs.sandbox.files import (
    PathEscape,
    normalized,
    read_confined,
    upload_tree,
    workspace_parts,
    write_confined,
)
from agentkit.errors import ToolError


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "/workspace/../etc", "a\x00b"]
)
def test_escapes_are_rejected_before_any_io(bad):
    with pytest.raises(PathEscape):
        workspace_parts(bad)


def test_path_escape_is_a_tool_error_the_model_sees():
    assert issubclass(PathEscape, ToolError)


@pytest.mark.parametrize(
    "path,parts", [("a/b.txt", ["a", "b.txt"]), ("./a//b", ["a", "b"]), ("/workspace/a", ["a"]), (".", [])]
)
def test_workspace_relative_paths(path, parts):
    assert workspace_parts(path) == parts
    assert normalized(path) == ("/".join(parts) or ".")


def test_round_trip_creates_parents(tmp_path):
    write_confined(tmp_path, "a/b/c.txt", b"hi")
    assert read_confined(tmp_path, "a/b/c.txt") == b"hi"
    write_confined(tmp_path, "a/b/c.txt", b"x")
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"x"


def test_symlinks_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s3cret")
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink(outside / "secret", ws / "leak")
    os.symlink(outside, ws / "dirleak")
    for path in ["leak", "dirleak/secret"]:
        with pytest.raises(PathEscape):
            read_confined(ws, path)
    for path in ["leak", "dirleak/new"]:
        with pytest.raises(PathEscape):
            write_confined(ws, path, b"x")
    assert (outside / "secret").read_text() == "s3cret"
    assert not (outside / "new").exists()


def test_hardlinks_and_special_files_are_refused(tmp_path):
    (tmp_path / "a").write_text("a")
    os.link(tmp_path / "a", tmp_path / "b")
    with pytest.raises(PathEscape):
        write_confined(tmp_path, "b", b"x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(PathEscape):
        read_confined(tmp_path, "fifo")
    with pytest.raises(PathEscape):
        read_confined(tmp_path, ".")


def test_upload_copies_files_modes_and_links(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("X = 1\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    os.symlink("pkg/m.py", src / "alias.py")
    ws = tmp_path / "ws"
    ws.mkdir()
    assert upload_tree(ws, src, "repo") == 2
    assert (ws / "repo/pkg/m.py").read_text() == "X = 1\n"
    assert os.access(ws / "repo/run.sh", os.X_OK)
    assert os.readlink(ws / "repo/alias.py") == "pkg/m.py"
    with pytest.raises(FileNotFoundError):
        upload_tree(ws, tmp_path / "missing")
