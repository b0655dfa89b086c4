"""Workspace-confined file access from the host side.

Paths are relative to the workspace root. ``..`` and absolute paths are rejected before any I/O, and
every component is opened with ``O_NOFOLLOW`` relative to its parent directory, so a symlink the
sandboxed code planted (``ln -s /etc leak``) is refused instead of followed, whatever it points to.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from agentkit.errors import ToolError


class PathEscape(ToolError, ValueError):
    """A path that leaves the workspace (absolute, ``..``, or through a symlink)."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def workspace_parts(path: str) -> list[str]:
    """The components of a workspace-relative path; raises ``PathEscape`` for escapes."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise PathEscape(f"invalid workspace path {path!r}")
    stripped = path[len("/workspace/") :] if path.startswith("/workspace/") else path
    if stripped.startswith("/"):
        raise PathEscape(f"absolute path {path!r} is outside the workspace")
    parts = [p for p in stripped.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PathEscape(f"path {path!r} leaves the workspace ('..' is not allowed)")
    return parts


def normalized(path: str) -> str:
    """``path`` as a clean relative POSIX path (``.`` for the root)."""
    return posixpath.join(*workspace_parts(path)) if workspace_parts(path) else "."


def _open_dir(root: Path, parts: list[str], create: bool, owner: tuple[int, int] | None) -> int:
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o775, dir_fd=fd)
                if owner:
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise PathEscape(
                    f"'{part}' is not a directory inside the workspace (symlinks are not followed)"
                ) from exc
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_confined(root: Path, path: str, max_bytes: int | None = None) -> bytes:
    parts = workspace_parts(path)
    if not parts:
        raise PathEscape("read_file needs a file path, not the workspace root")
    dir_fd = _open_dir(root, parts[:-1], create=False, owner=None)
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: the last component is a symlink
                raise PathEscape(f"{path!r} is a symlink; symlinks are not followed") from exc
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathEscape(f"{path!r} is not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read() if max_bytes is None else f.read(max_bytes)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def write_confined(
    root: Path, path: str, content: bytes, owner: tuple[int, int] | None = None, mode: int = 0o664
) -> None:
    parts = workspace_parts(path)
    if not parts:
        raise PathEscape("write_file needs a file path, not the workspace root")
    dir_fd = _open_dir(root, parts[:-1], create=True, owner=owner)
    try:
        try:
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                mode,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            if exc.errno == 40:
                raise PathEscape(f"{path!r} is a symlink; symlinks are not followed") from exc
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise PathEscape(f"{path!r} is not a regular file with a single link")
            os.ftruncate(fd, 0)
            if owner:
                os.fchown(fd, *owner)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def upload_tree(
    root: Path, source_dir: str | os.PathLike, dest: str = ".", owner: tuple[int, int] | None = None
) -> int:
    """Copy a host directory into the workspace (symlinks copied as links); returns the file count."""
    source = Path(source_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"upload source {str(source)!r} is not a directory")
    base = workspace_parts(dest)
    count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source).parts
        dir_fd = _open_dir(root, base + list(rel), create=True, owner=owner)
        try:
            for name in dirnames + filenames:
                src = os.path.join(dirpath, name)
                if os.path.islink(src):
                    try:
                        os.unlink(name, dir_fd=dir_fd)
                    except FileNotFoundError:
                        pass
                    os.symlink(os.readlink(src), name, dir_fd=dir_fd)
                    if owner:
                        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
                elif name in filenames:
                    mode = 0o775 if os.stat(src).st_mode & 0o111 else 0o664
                    with open(src, "rb") as f:
                        write_confined(root, "/".join([*base, *rel, name]), f.read(), owner, mode)
                    count += 1
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        finally:
            os.close(dir_fd)
    return count
