"""Per-instance cgroups for the bwrap backend: cgroup v2 (a delegated, writable subtree) or cgroup v1
(``pids``/``memory``/``cpuacct`` hierarchies writable by this process, i.e. root).

Every exec and every Python worker runs in a cgroup of its own: ``pids.max`` stops fork bombs, the memory
limit (no swap) OOM-kills a memory bomb and the OOM counter says so, the CPU counter tells a CPU-limit
kill from another SIGKILL, and removing the cgroup kills whatever the instance left behind.

cgroup v2 needs a subtree this user may write with ``memory`` and ``pids`` delegated to it (a systemd
``Delegate=yes`` unit or scope: ``systemd-run --user --scope -p Delegate=yes agentkit ...``). The v2
"no internal processes" rule means the cgroup that enables controllers for its children holds no process
itself, so this process first moves into a leaf of its own (``agentkit-host-<pid>``), and only when it is
alone in its cgroup (it never moves processes it did not start).
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Protocol

from agentkit.envs.sandbox.base import process_alive
from agentkit.sandbox import SandboxLimits

V1_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


class Cgroup(Protocol):
    """One instance's cgroup, whichever version."""

    @property
    def procs_files(self) -> list[str]: ...

    def cpu_seconds(self) -> float: ...

    def oom_kills(self) -> int: ...

    def remove(self) -> None: ...


class CgroupHost(Protocol):
    version: int

    def create(self, limits: SandboxLimits) -> Cgroup: ...

    def cleanup(self) -> None: ...

    def describe(self) -> dict[str, str]: ...


def _kill_pids(read_pids) -> None:
    for _ in range(50):
        pids = read_pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002)


def _rmdir(directory: Path) -> None:
    for _ in range(100):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last killed task exits
            time.sleep(0.005)


def _read_pids(directory: Path) -> set[int]:
    try:
        return {int(p) for p in (directory / "cgroup.procs").read_text().split()}
    except OSError:
        return set()


def _reap_stale(base: Path, remove) -> None:
    """Remove cgroups left by agentkit processes that died without cleaning up."""
    try:
        entries = list(base.glob("agentkit-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            remove(entry)


# ---------------------------------------------------------------------------------------------- v1


class CgroupV1:
    """One instance's cgroup v1 directories (``pids``, ``memory``, ``cpuacct``)."""

    def __init__(self, dirs: dict[str, Path]):
        self.dirs = dirs

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def cpu_seconds(self) -> float:
        try:
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (KeyError, OSError, ValueError):
            return 0.0

    def oom_kills(self) -> int:
        memory = self.dirs.get("memory")
        if memory is None:
            return 0
        try:
            for line in (memory / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs.values():
            found |= _read_pids(directory)
        return found

    def remove(self) -> None:
        _kill_pids(self.pids)
        for directory in self.dirs.values():
            _rmdir(directory)


class CgroupV1Host:
    """Where this process makes per-instance cgroups: ``<own cgroup>/agentkit-<pid>/<n>`` per controller."""

    version = 1
    CONTROLLERS = ("pids", "memory", "cpuacct")
    """``cpuacct`` tells a CPU-limit kill from another SIGKILL when the command runs as pid 1."""

    def __init__(self, parents: dict[str, Path]):
        self.parents = parents

    @classmethod
    def detect(cls, root: Path = V1_ROOT) -> tuple[CgroupV1Host | None, str]:
        own = _own_cgroups()
        if own is None:
            return None, "cannot read /proc/self/cgroup"
        parents: dict[str, Path] = {}
        for controller in cls.CONTROLLERS:
            mount = root / controller
            if controller not in own or not (mount / "cgroup.procs").exists():
                return None, f"no cgroup v1 '{controller}' hierarchy at {mount}"
            base = mount / own[controller].lstrip("/")
            if not os.access(base, os.W_OK):
                return None, f"cgroup v1 {base} is not writable by uid {os.geteuid()}"
            _reap_stale(base, _remove_v1_parent)
            parent = base / f"agentkit-{os.getpid()}"
            try:
                parent.mkdir(exist_ok=True)
            except OSError as exc:
                return None, f"cannot create cgroups under {base} ({exc.strerror})"
            parents[controller] = parent
        return cls(parents), "cgroup v1 pids+memory+cpuacct"

    def create(self, limits: SandboxLimits) -> CgroupV1:
        name = f"{next(_counter)}-{secrets.token_hex(3)}"
        dirs: dict[str, Path] = {}
        try:
            for controller, parent in self.parents.items():
                directory = parent / name
                directory.mkdir()
                dirs[controller] = directory
            (dirs["pids"] / "pids.max").write_text(str(limits.max_processes))
            memory = str(limits.memory_mb * 1024 * 1024)
            (dirs["memory"] / "memory.limit_in_bytes").write_text(memory)
            memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text(memory)
            (dirs["memory"] / "memory.swappiness").write_text("0")
        except OSError:
            CgroupV1(dirs).remove()
            raise
        return CgroupV1(dirs)

    def cleanup(self) -> None:
        for parent in self.parents.values():
            _remove_v1_parent(parent)

    def describe(self) -> dict[str, str]:
        return {
            "processes": "cgroup v1 pids.max",
            "memory": "cgroup v1 memory.limit_in_bytes = memsw (OOM kill -> oom)",
            "cpu accounting": "cgroup v1 cpuacct.usage",
        }


def _remove_v1_parent(parent: Path) -> None:
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.is_dir():
            CgroupV1({"x": child}).remove()
    try:
        parent.rmdir()
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------- v2


class CgroupV2:
    """One instance's cgroup v2 directory."""

    def __init__(self, directory: Path):
        self.directory = directory

    @property
    def procs_files(self) -> list[str]:
        return [str(self.directory / "cgroup.procs")]

    def _keyed(self, name: str, key: str) -> int:
        try:
            for line in (self.directory / name).read_text().splitlines():
                if line.startswith(key + " "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def cpu_seconds(self) -> float:
        return self._keyed("cpu.stat", "usage_usec") / 1e6

    def oom_kills(self) -> int:
        return self._keyed("memory.events", "oom_kill")

    def pids(self) -> set[int]:
        return _read_pids(self.directory)

    def remove(self) -> None:
        kill = self.directory / "cgroup.kill"  # kernel >= 5.14: the whole subtree at once
        try:
            kill.write_text("1")
        except OSError:
            pass
        _kill_pids(self.pids)
        _rmdir(self.directory)


class CgroupV2Host:
    """Per-instance cgroups under ``<own cgroup>/agentkit-<pid>/<n>`` in a delegated cgroup v2 subtree."""

    version = 2
    CONTROLLERS = ("memory", "pids")

    def __init__(self, base: Path, parent: Path, controllers: tuple[str, ...]):
        self.base, self.parent, self.controllers = base, parent, controllers

    @classmethod
    def detect(
        cls, mount: Path | None = None, own: str | None = None, controllers: tuple[str, ...] = CONTROLLERS
    ) -> tuple[CgroupV2Host | None, str]:
        """Set up this process's subtree, or (None, why not). ``mount``/``own`` default to this
        process's cgroup2 mount and cgroup; ``controllers`` are the ones that must be delegated."""
        if mount is None:
            mount = _cgroup2_mount()
            if mount is None:
                return None, "no cgroup2 filesystem is mounted"
        if own is None:
            own = (_own_cgroups() or {}).get("")
            if own is None:
                return None, "this process has no cgroup v2 path in /proc/self/cgroup"
        base = mount / own.lstrip("/")
        try:
            available = (base / "cgroup.controllers").read_text().split()
        except OSError as exc:
            return None, f"cannot read {base}/cgroup.controllers ({exc.strerror})"
        missing = [c for c in controllers if c not in available]
        if missing:
            return None, (
                f"cgroup v2 {base} has no {'+'.join(missing)} controller delegated (run agentkit in a "
                "delegated scope: systemd-run --user --scope -p Delegate=yes agentkit ...)"
            )
        if not all(os.access(base / f, os.W_OK) for f in ("", "cgroup.procs", "cgroup.subtree_control")):
            return None, (
                f"cgroup v2 {base} is not writable by uid {os.geteuid()} (run agentkit in a delegated "
                "scope: systemd-run --user --scope -p Delegate=yes agentkit ...)"
            )
        _reap_stale(base, _remove_v2_parent)
        mine = {os.getpid()}
        others = _read_pids(base) - mine
        if others:
            return None, (
                f"cgroup v2 {base} also holds {len(others)} other process(es), so it cannot delegate "
                "controllers to children (start agentkit in a scope of its own: systemd-run --user "
                "--scope -p Delegate=yes agentkit ...)"
            )
        enable = " ".join(f"+{c}" for c in controllers)
        parent = base / f"agentkit-{os.getpid()}"
        try:
            if os.getpid() in _read_pids(base):
                leaf = base / f"agentkit-host-{os.getpid()}"
                leaf.mkdir(exist_ok=True)
                (leaf / "cgroup.procs").write_text(str(os.getpid()))
            if enable:
                (base / "cgroup.subtree_control").write_text(enable)
            parent.mkdir(exist_ok=True)
            if enable:
                (parent / "cgroup.subtree_control").write_text(enable)
        except OSError as exc:
            return None, f"cannot set up cgroups under {base} ({exc.strerror})"
        return cls(base, parent, tuple(controllers)), f"cgroup v2 {'+'.join(controllers) or 'no controllers'}"

    def create(self, limits: SandboxLimits) -> CgroupV2:
        directory = self.parent / f"{next(_counter)}-{secrets.token_hex(3)}"
        directory.mkdir()
        group = CgroupV2(directory)
        try:
            if "pids" in self.controllers:
                (directory / "pids.max").write_text(str(limits.max_processes))
            if "memory" in self.controllers:
                (directory / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if (directory / name).exists():
                        (directory / name).write_text(value)
        except OSError:
            group.remove()
            raise
        return group

    def cleanup(self) -> None:
        _remove_v2_parent(self.parent)

    def describe(self) -> dict[str, str]:
        return {
            "processes": "cgroup v2 pids.max",
            "memory": "cgroup v2 memory.max, memory.swap.max=0 (OOM kill -> oom)",
            "cpu accounting": "cgroup v2 cpu.stat usage_usec",
        }


def _remove_v2_parent(parent: Path) -> None:
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.is_dir():
            CgroupV2(child).remove()
    _rmdir(parent)


# ------------------------------------------------------------------------------------------ detection


def _own_cgroups() -> dict[str, str] | None:
    """controller -> this process's cgroup path ("" is the cgroup v2 entry)."""
    own: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            hid, names, path = line.split(":", 2)
            if hid == "0" and names == "":
                own[""] = path
            for name in names.split(","):
                if name:
                    own[name] = path
    except OSError:
        return None
    return own


def _cgroup2_mount() -> Path | None:
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2" and left.split()[3] == "/":
                return Path(left.split()[4])
    except OSError:
        pass
    return None


_HOST: tuple[CgroupHost | None, str] | None = None


def host() -> tuple[CgroupHost | None, str]:
    """This process's cgroup host, detected once: cgroup v2 first, then v1; (None, why neither)."""
    global _HOST
    if _HOST is None:
        found: CgroupHost | None
        v2, why = CgroupV2Host.detect()
        found = v2
        if v2 is None:
            v1, why1 = CgroupV1Host.detect()
            found, why = v1, (why1 if v1 is not None else f"{why}; {why1}")
        if found is not None:
            atexit.register(found.cleanup)
        _HOST = found, why
    return _HOST
