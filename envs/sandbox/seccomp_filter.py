"""The seccomp filter of the bwrap backend, compiled by libseccomp and handed to bubblewrap (``--seccomp FD``).

Default allow; the calls below fail with ``ENOSYS``, as on a kernel built without them, so programs take
their "not available" path, and a conformance probe can tell the filter's answer from the kernel's own
(a capability check says ``EPERM``, bad arguments ``EFAULT``/``EINVAL``). ``clone3`` is denied as a
whole (its flags live in memory a filter cannot read; glibc falls back to ``clone`` on ``ENOSYS``), and
``clone`` only with a namespace flag. Calls of a foreign ABI (x32, i386 on x86-64) are killed by
libseccomp's architecture check.

The BPF program is built with libseccomp (the C library every systemd distribution ships) through its
Python API: the official bindings (``import seccomp``, Debian's python3-seccomp) when importable, else
``pyseccomp`` (pip, pure Python, ctypes over the same ``libseccomp.so.2``, the same API).
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from dataclasses import dataclass
from typing import Any

DENY_ERRNO = errno.ENOSYS

CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}


@dataclass(frozen=True)
class Group:
    """Denied calls that belong together, each with a probe: arguments (ints; ``"str:..."`` is a
    C string) that a kernel without the filter answers with something other than ENOSYS."""

    name: str
    why: str
    probes: tuple[tuple[str, tuple[Any, ...]], ...]
    extra: tuple[str, ...] = ()
    """Also denied, without a probe of their own."""

    @property
    def calls(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.probes) + self.extra


GROUPS: tuple[Group, ...] = (
    Group(
        "ptrace",
        "reading or steering other processes",
        (
            ("ptrace", (0, 0, 0, 0)),  # PTRACE_TRACEME: succeeds unfiltered
            ("process_vm_readv", ("pid", 0, 0, 0, 0, 0)),  # 0 iovecs: returns 0 unfiltered
        ),
        ("process_vm_writev",),
    ),
    Group(
        "mount",
        "changing the mount table",
        (
            ("mount", (0, 1, 0, 0, 0)),  # bad target pointer: EFAULT
            ("umount2", ("str:/", 0xFFFF)),  # bad flags: EINVAL
        ),
        (
            "move_mount",
            "open_tree",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "pivot_root",
            "chroot",
        ),
    ),
    Group(
        "namespaces",
        "new namespaces (a nested user namespace regains every capability in it)",
        (
            ("unshare", (1,)),  # invalid flag: EINVAL
            ("setns", (-1, 0)),  # EBADF
            ("clone", (0x10000000 | 0x200, 0, 0, 0, 0)),  # CLONE_NEWUSER|CLONE_FS: EINVAL
            ("clone3", (0, 0)),  # size 0: EINVAL
        ),
    ),
    Group(
        "keyring",
        "the kernel keyring (shared by every process of a uid)",
        (
            ("keyctl", (0, -1000, 0)),  # unknown special keyring: EINVAL
            ("add_key", (0, 0, 0, 0, 0)),  # EFAULT
            ("request_key", (0, 0, 0, 0)),  # EFAULT
        ),
    ),
    Group(
        "bpf",
        "loading BPF programs",
        (
            ("bpf", (0, 0, 1 << 20)),  # attr bigger than a page: E2BIG
        ),
    ),
    Group(
        "perf_event_open",
        "performance counters (side channels, a history of kernel bugs)",
        (
            ("perf_event_open", (0, 0, -1, -1, 0)),  # EFAULT
        ),
    ),
    Group(
        "userfaultfd",
        "stalling the kernel on a page fault (a staple of kernel exploits)",
        (
            ("userfaultfd", (1,)),  # UFFD_USER_MODE_ONLY: an fd unfiltered
        ),
    ),
    Group(
        "kexec",
        "replacing the running kernel",
        (
            ("kexec_load", (0, 0, 0, 0xFFFF0000)),  # EPERM (capability) or EINVAL
            ("kexec_file_load", (-1, -1, 0, 0, 0)),
        ),
    ),
    Group(
        "init_module",
        "loading or removing kernel modules",
        (
            ("init_module", (0, 0, 0)),
            ("finit_module", (-1, 0, 0)),
            ("delete_module", (0, 0)),
        ),
    ),
    Group(
        "open_by_handle_at",
        "opening host files by handle, around every mount (the shocker escape)",
        (
            ("open_by_handle_at", (-1, 0, 0)),
            ("name_to_handle_at", (-1, 0, 0, 0, 0)),
        ),
    ),
    Group(
        "host_admin",
        "other host-wide administration",
        (
            ("reboot", (0, 0, 0, 0)),
            ("swapon", (0, 0)),
            ("acct", (0,)),
            ("syslog", (3, 0, 0)),  # SYSLOG_ACTION_READ_ALL, no buffer
            ("io_uring_setup", (0, 0)),  # entries 0: EINVAL
        ),
        (
            "swapoff",
            "quotactl",
            "iopl",
            "ioperm",
            "uselib",
            "vhangup",
            "lookup_dcookie",
            "io_uring_enter",
            "io_uring_register",
            "settimeofday",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
        ),
    ),
)


class SeccompUnavailable(RuntimeError):
    """libseccomp or its Python API cannot be loaded."""


def _module():
    try:
        # the official bindings (Debian's python3-seccomp): a system package, outside the venv pyright reads
        import seccomp  # pyright: ignore[reportMissingImports]

        return seccomp
    except ImportError:
        pass
    try:
        import pyseccomp
    except ImportError as exc:
        raise SeccompUnavailable("no libseccomp Python API: pip install pyseccomp") from exc
    except (OSError, RuntimeError) as exc:  # pyseccomp found no libseccomp.so.2
        raise SeccompUnavailable(f"libseccomp is missing ({exc}): apt-get install libseccomp2") from exc
    return pyseccomp


@functools.cache
def program() -> bytes:
    """The filter as raw BPF (what ``bwrap --seccomp`` reads), built once per process."""
    sc = _module()
    deny = sc.ERRNO(DENY_ERRNO)
    flt = sc.SyscallFilter(sc.ALLOW)
    arch = sc.system_arch()
    for group in GROUPS:
        for call in group.calls:
            if call == "clone":
                continue
            try:
                sc.resolve_syscall(arch, call)
            except (ValueError, OSError):  # not a call of this architecture (iopl on arm64, say)
                continue
            flt.add_rule(deny, call)
    for flag in CLONE_NEW_FLAGS.values():
        flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def syscall_numbers() -> dict[str, int]:
    """Every probed call's number on this machine's architecture (the probes run inside the sandbox)."""
    sc = _module()
    arch = sc.system_arch()
    numbers = {}
    for group in GROUPS:
        for call, _ in group.probes:
            try:
                numbers[call] = int(sc.resolve_syscall(arch, call))
            except (ValueError, OSError):
                pass
    return numbers


def status() -> tuple[bool, str]:
    """(usable, what builds the filter / why not)."""
    try:
        sc = _module()
        size = len(program())
    except SeccompUnavailable as exc:
        return False, str(exc)
    except Exception as exc:
        return False, f"libseccomp could not build the filter: {exc}"
    calls = sum(len(g.calls) for g in GROUPS)
    return (
        True,
        f"{sc.__name__} over libseccomp, {calls} calls denied with ENOSYS, {size // 8} BPF instructions",
    )


def pipe_fd() -> int:
    """A read end that yields the filter once (bwrap reads it to EOF); the caller closes it."""
    data = program()
    read, write = os.pipe()
    try:
        view = memoryview(data)
        while view:  # the program is a few KiB, well under a pipe's buffer
            view = view[os.write(write, view) :]
    finally:
        os.close(write)
    return read


def probe_source(numbers: dict[str, int]) -> str:
    """Python run inside a sandbox: each probe's call, printed as ``name errno`` (0 = it succeeded)."""
    calls = [(name, args) for group in GROUPS for name, args in group.probes if name in numbers]
    return (
        "import ctypes, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        f"numbers = {numbers!r}\n"
        f"calls = {calls!r}\n"
        "out = {}\n"
        "for name, args in calls:\n"
        "    keep = []\n"
        "    cargs = []\n"
        "    for a in args:\n"
        "        if a == 'pid':\n"
        "            a = os.getpid()\n"
        "        if isinstance(a, str) and a.startswith('str:'):\n"
        "            keep.append(ctypes.create_string_buffer(a[4:].encode()))\n"
        "            cargs.append(ctypes.cast(keep[-1], ctypes.c_void_p))\n"
        "        else:\n"
        "            cargs.append(ctypes.c_long(a))\n"
        "    ctypes.set_errno(0)\n"
        "    ret = libc.syscall(ctypes.c_long(numbers[name]), *cargs)\n"
        "    if ret == 0 and name in ('clone', 'clone3'):\n"
        "        os._exit(0)\n"
        "    out[name] = ctypes.get_errno() if ret < 0 else 0\n"
        "print(json.dumps(out))\n"
    )
