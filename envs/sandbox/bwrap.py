"""The ``bwrap`` backend: every exec and every Python worker is a bubblewrap sandbox over one private
workspace directory. It runs in one of two modes, chosen by who starts it:

- **root mode** (agentkit runs as root): bwrap sets up the mounts as root, then ``setpriv`` drops the
  command to a per-sandbox host uid/gid (random, >= 10,000,000; no supplementary groups, empty
  capability and bounding sets, no_new_privs). No user namespace.
- **user mode** (any other user): bwrap makes a user namespace, where the command runs as ``nobody``
  (uid/gid 65534 inside, mapped to the invoking user outside) with no capabilities (bounding set empty
  too), no_new_privs, and no further user namespaces (``--disable-userns``).

Threat model (verified on the CI host, kernel 6.x, cgroup v1; user mode as an ordinary account):

Isolated, both modes
- Network: a new network namespace with only its own loopback (``limits.network=True`` shares the
  host's). Host loopback services and outside addresses are unreachable.
- Processes: new pid, ipc, uts and cgroup namespaces; a sandbox sees and signals only its own
  processes (each exec and each worker is an instance of its own, so two sessions never see each other:
  a conformance check). ``--die-with-parent``; a new session without a controlling terminal (no TIOCSTI).
  SIGKILL of the outer bwrap tears down the whole pid namespace, so at a timeout background children
  and daemonized orphans die with it; a normal exit of the command does the same.
- System calls: a seccomp filter built by libseccomp (``agentkit.envs.sandbox.seccomp_filter``) denies ptrace
  and process_vm_*, the mount family, unshare/setns/namespace clones/clone3, the keyring, bpf,
  perf_event_open, userfaultfd, kexec_*, module loading, open_by_handle_at, io_uring and host
  administration calls with ENOSYS; one conformance check per group proves each denial against an
  unfiltered control. ``options.seccomp=false`` turns it off (reported as such).
- Filesystem: a fresh root with read-only binds of ``/usr`` (and the ``/bin``, ``/lib*`` links), a
  few ``/etc`` files the dynamic loader reads, the Python installation(s) the worker needs, and
  nothing else of the host (no ``/etc/passwd``, ``/home``, ``/root``, ``/var``, sockets); private
  ``/proc``, ``/dev`` and a size-capped ``/tmp`` tmpfs; the workspace is the only writable host
  directory. Host-side ``read_file``/``write_file`` never follow symlinks (``agentkit.envs.sandbox.files``).
  Workspaces live in this user's runtime directory (mode 700, ``base.runtime_dir``).
- Environment: built from constants (``PATH``, ``HOME``, locale, thread counts); nothing of
  ``os.environ`` reaches bwrap or the sandbox.
- Limits: each exec and each worker runs in a cgroup of its own when one is writable (v2 delegated
  subtree, else v1: ``pids.max`` stops fork bombs, the memory limit without swap OOM-kills memory bombs,
  reported as ``oom``), with rlimits on CPU seconds, file size, open files and processes, applied by the
  host to bwrap's child (``--info-fd``/``--block-fd``) before it runs anything; a wall-clock deadline
  kills the tree; stdout/stderr are capped per stream. Without a writable cgroup, memory falls back to
  ``RLIMIT_AS`` and processes to ``RLIMIT_NPROC``; ``limits_report()`` names the mechanism of each limit
  (``options.cgroups=required`` refuses to run without a cgroup instead).

Differences between the modes
- Privilege: root mode's sandbox uid is a real, unused host uid: files it leaves belong to nobody on
  the host, and ``RLIMIT_NPROC`` counts that uid alone. User mode's sandbox is the invoking user to the
  host kernel outside its namespaces: its files belong to that user, and ``RLIMIT_NPROC`` counts the
  processes of that user namespace only (kernel >= 5.14 counts rlimits per user namespace; older
  kernels count all of the user's processes, and ``limits_report`` says so).
- Kernel surface: user mode reaches kernel code paths meant for namespace owners during bwrap's setup
  (mounts in its own namespace); the sandboxed command itself holds no capability and cannot make new
  namespaces (seccomp and ``--disable-userns``).
- cgroups: root mode uses cgroup v1 or v2; user mode only a delegated cgroup v2 subtree (systemd
  ``Delegate=yes``), else the rlimit fallback.

Zygote sessions (``options.zygote=true``, either mode; ``envs/sandbox/zygote.py``)
- A warm session is forked from a per-interpreter zygote (sympy and numpy imported once, shared
  copy-on-write) into the namespaces of its own fresh bwrap sandbox (``setns``), instead of a fresh
  interpreter started by bwrap. Before any cell it takes the same identity, capability sets, bounding
  set, no_new_privs, rlimits, seccomp program and cgroup as a plain worker; it holds only its own pipes
  (a conformance check lists its descriptors), reads its environment from the host on its own stdin
  (nothing of one sandbox passes through the zygote into a later session), and dies with its sandbox's
  pid namespace. The whole conformance suite runs against it, as root and as a user.
- What differs: the session's memory starts as a copy of the zygote's (the worker and the preloaded
  modules, nothing of agentkit's process); the zygote is a host process of the invoking user (root in
  root mode) that runs only that import code; the session's parent (the helper that reports its exit
  status) lives outside the sandbox's pid namespace, so inside its parent pid is 0.

Not isolated (known gaps)
- Same kernel as the host: a kernel exploit through an allowed system call escapes.
- Disk: the workspace lives on the host's disk; only single files are capped (``RLIMIT_FSIZE``), not
  the total a sandbox writes. CPU share is not capped, only CPU seconds per exec/cell.
- Read-only code: everything under ``/usr`` and the Python installations is readable inside.
- Limits are per exec/worker: a session and a concurrent exec of one sandbox may each use
  ``memory_mb``. ``RLIMIT_AS`` (the fallback) caps address space, not resident memory.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import functools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.envs.sandbox import cgroups, files
from agentkit.envs.sandbox import seccomp_filter as seccomp
from agentkit.envs.sandbox.base import (
    DEFAULT_PRELOAD,
    WORKER_SOURCE,
    CappedBuffer,
    SandboxBase,
    classify,
    decode,
    exec_result,
    process_alive,
    read_capped,
    runtime_dir,
    scrubbed_env,
    shell_exit_code,
)
from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.registry import SANDBOXES
from agentkit.sandbox import ExecResult, ExecStatus, SandboxLimits

WORKER_PATH = "/opt/agentkit/worker.py"
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534
CGROUP_MODES = ("auto", "required", "off")


# ------------------------------------------------------------------------------------------- the host


def _sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = platform.release().split(".")
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) >= (major, minor)
    except (IndexError, ValueError):
        return False


@functools.cache
def _bwrap_features(bwrap: str) -> frozenset[str]:
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(flag for flag in ("--disable-userns", "--seccomp", "--cap-drop") if flag in text)


@functools.cache
def _userns_probe(bwrap: str) -> str | None:
    """None when bubblewrap can make a user namespace here, else its last line of complaint."""
    try:
        done = subprocess.run(
            [
                bwrap,
                "--unshare-user",
                "--unshare-pid",
                "--unshare-net",
                "--ro-bind",
                "/",
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": HOST_PATH},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def _userns_problem(bwrap: str) -> str | None:
    """Why an ordinary user cannot have a user namespace here, and how to enable it; None if it can."""
    if _sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return (
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0): enable them with "
            "`sudo sysctl -w kernel.unprivileged_userns_clone=1`, or run agentkit as root"
        )
    if _sysctl("/proc/sys/user/max_user_namespaces") == "0":
        return (
            "user namespaces are disabled (user.max_user_namespaces=0): enable them with "
            "`sudo sysctl -w user.max_user_namespaces=28633`, or run agentkit as root"
        )
    if _sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" and _userns_probe(bwrap):
        return (
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): "
            "install an AppArmor profile that allows `userns` for bwrap (Ubuntu: apt-get install apparmor-profiles "
            "and enable bwrap-userns-restrict, or a profile `/usr/bin/bwrap flags=(unconfined) { userns, }`), "
            "or `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
        )
    failure = _userns_probe(bwrap)
    if failure:
        return (
            f"bubblewrap cannot create a user namespace as uid {os.geteuid()}: {failure} (check that unprivileged "
            "user namespaces are enabled, or run agentkit as root)"
        )
    return None


@dataclass(frozen=True)
class Diagnosis:
    """What this host offers the bwrap backend: the mode, the one blocking problem (None: it works),
    and the facts ``agentkit sandbox check`` prints before any check."""

    mode: str
    problem: str | None
    facts: dict[str, str] = field(default_factory=dict)


@functools.cache
def diagnose(bwrap: str = "bwrap", use_seccomp: bool = True, cgroup_mode: str = "auto") -> Diagnosis:
    """Checked once per process and option set; a problem is one line naming what is missing and how
    to enable it (the sandbox raises it as ``SandboxUnavailable``; the CLI prints it and exits 2)."""
    mode = "root" if os.geteuid() == 0 else "user"
    facts = {"mode": f"{mode} (uid {os.geteuid()}, kernel {platform.release()})"}
    path = shutil.which(bwrap) or bwrap
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return Diagnosis(
            mode,
            f"bubblewrap is not installed ({bwrap!r} not found): apt-get install bubblewrap "
            "(dnf install bubblewrap)",
            facts,
        )
    features = _bwrap_features(path)
    facts["bwrap"] = path
    if mode == "root":
        if shutil.which("setpriv", path=HOST_PATH) is None:
            return Diagnosis(
                mode,
                "setpriv is not installed (it drops root to the sandbox uid): apt-get install util-linux",
                facts,
            )
    else:
        problem = _userns_problem(path)
        if problem:
            return Diagnosis(mode, problem, facts)
        facts["user namespace"] = "available" + (
            ""
            if "--disable-userns" in features
            else " (bwrap < 0.8: no --disable-userns; seccomp still denies unshare)"
        )
    if use_seccomp:
        if "--seccomp" not in features:
            return Diagnosis(
                mode,
                f"{path} has no --seccomp option: install bubblewrap >= 0.3, or set "
                "options.seccomp=false to run without a seccomp filter",
                facts,
            )
        ok, how = seccomp.status()
        if not ok:
            return Diagnosis(
                mode, f"no seccomp filter: {how}; or set options.seccomp=false to run without one", facts
            )
        facts["seccomp"] = how
    else:
        facts["seccomp"] = "off (options.seccomp=false)"
    if cgroup_mode != "off":
        host, why = cgroups.host()
        if host is None and cgroup_mode == "required":
            return Diagnosis(
                mode,
                f"no writable cgroup for the memory and process limits: {why} "
                "(or set options.cgroups=auto to fall back to rlimits)",
                facts,
            )
        facts["cgroups"] = why if host is not None else f"none writable ({why}); rlimit fallback"
    else:
        facts["cgroups"] = "off (options.cgroups=off); rlimit fallback"
    return Diagnosis(mode, None, facts)


# ------------------------------------------------------------------------------------------- sandbox

_LIVE: weakref.WeakSet[BwrapSandbox] = weakref.WeakSet()
_REAPED_ROOTS: set[str] = set()


@atexit.register
def _kill_leftovers() -> None:
    for sandbox in list(_LIVE):
        sandbox._kill_sync()


def _python_roots(python: str) -> list[str]:
    """Directories a host interpreter needs, outside ``/usr`` (venv and base installation)."""
    roots: list[str] = []
    candidates = [
        os.path.dirname(os.path.dirname(os.path.abspath(python))),
        os.path.dirname(os.path.dirname(os.path.realpath(python))),
    ]
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        candidates += [sys.prefix, sys.base_prefix, sys.exec_prefix]
    for path in candidates:
        path = os.path.abspath(path)
        if path in ("/", "/usr") or path.startswith("/usr/"):
            continue
        if not any(path == r or path.startswith(r + "/") for r in roots):
            roots = [r for r in roots if not r.startswith(path + "/")] + [path]
    return roots


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _ro_bind_with_parents(path: str, made: set[str]) -> list[str]:
    args: list[str] = []
    parent = os.path.dirname(path)
    chain = []
    while parent not in ("/", ""):
        chain.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(chain):
        if directory not in made and not directory.startswith("/usr"):
            made.add(directory)
            args += ["--perms", "0755", "--dir", directory]
    return args + ["--ro-bind", path, path]


def _rmtree(path: Path) -> None:
    """Remove a workspace even where sandboxed code left directories without write permission."""

    def fix(func, name, _exc):
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


def _reap_stale_workspaces(root: Path) -> None:
    """Workspaces of agentkit processes that died without cleaning up (``<pid>-*``)."""
    if str(root) in _REAPED_ROOTS:
        return
    _REAPED_ROOTS.add(str(root))
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)) and entry.is_dir():
            _rmtree(entry)


@SANDBOXES.register("bwrap")
class BwrapSandbox(SandboxBase):
    """A bubblewrap sandbox: a private workspace, cold execs and one warm Python session."""

    BACKEND = "bwrap"
    OPTIONS: dict[str, Any] = {
        "python": None,  # interpreter inside the sandbox (default: this one, with its packages)
        "preload": list(DEFAULT_PRELOAD),
        "ro_binds": [],  # extra host paths, bound read-only at the same place
        "env": {},  # extra environment variables (the rest is scrubbed)
        "tmp_mb": 256,  # size of the private /tmp
        "workspace_root": None,  # host directory for workspaces (default: <runtime dir>/sandboxes)
        "bwrap": "bwrap",
        "cgroups": "auto",  # auto: a per-instance cgroup where writable, else rlimits; required; off
        "seccomp": True,  # the seccomp filter (envs/sandbox/seccomp_filter.py)
        "zygote": False,  # warm sessions forked from a zygote with the preloads imported (zygote.py)
    }

    @classmethod
    def validate(cls, options: dict[str, Any]) -> dict[str, Any]:
        opts = super().validate(options)
        cg = opts["cgroups"]
        if isinstance(cg, bool):
            opts["cgroups"] = "auto" if cg else "off"
        elif cg not in CGROUP_MODES:
            raise ConfigError(
                f"sandbox backend 'bwrap': options.cgroups={cg!r} must be one of "
                f"{', '.join(CGROUP_MODES)} (or true/false)"
            )
        for key in ("seccomp", "zygote"):
            if not isinstance(opts[key], bool):
                raise ConfigError(
                    f"sandbox backend 'bwrap': options.{key}={opts[key]!r} must be true or false"
                )
        if opts["zygote"] and not opts["seccomp"]:
            raise ConfigError(
                "sandbox backend 'bwrap': options.zygote=true needs options.seccomp=true "
                "(zygote sessions load the filter themselves)"
            )
        for key in ("ro_binds", "preload"):
            if isinstance(opts[key], str) or not all(isinstance(p, str) for p in opts[key]):
                raise ConfigError(f"sandbox backend 'bwrap': options.{key} must be a list of strings")
        if not isinstance(opts["env"], dict):
            raise ConfigError("sandbox backend 'bwrap': options.env must be a mapping")
        return opts

    def __init__(self, limits: SandboxLimits | None = None, **options: Any):
        super().__init__(limits, options)
        opts = self.options
        self.python_path = opts["python"] or sys.executable
        self.tmp_mb = int(opts["tmp_mb"])
        self.cgroup_mode = opts["cgroups"]
        self.use_seccomp = opts["seccomp"]
        self.use_zygote = opts["zygote"]
        self._bwrap = shutil.which(opts["bwrap"]) or opts["bwrap"]
        self.mode = "root" if os.geteuid() == 0 else "user"
        self.uid = 10_000_000 + secrets.randbelow(1_000_000_000) if self.mode == "root" else os.geteuid()
        root = Path(opts["workspace_root"]) if opts["workspace_root"] else runtime_dir() / "sandboxes"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _reap_stale_workspaces(root)
        self.workspace = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        if self.mode == "root":
            os.chown(self.workspace, self.uid, self.uid)
            os.chmod(self.workspace, 0o770)
        self._owner = (self.uid, self.uid) if self.mode == "root" else None
        env_path = ":".join(
            [os.path.dirname(os.path.abspath(self.python_path)), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        self._env = scrubbed_env(opts["env"], path=env_path)
        self._extra_binds = [str(Path(p).resolve()) for p in opts["ro_binds"]]
        self._base_args: list[str] | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._cgroups: set[cgroups.Cgroup] = set()
        _LIVE.add(self)

    # -- the host and the command line -----------------------------------------------------------------

    def diagnosis(self) -> Diagnosis:
        return diagnose(self._bwrap, self.use_seccomp, self.cgroup_mode)

    def refusal(self) -> str | None:
        return self.diagnosis().problem

    def diagnosis_facts(self) -> dict[str, str]:
        return dict(self.diagnosis().facts)

    def _cgroup_host(self) -> cgroups.CgroupHost | None:
        return cgroups.host()[0] if self.cgroup_mode != "off" else None

    def _limit_mechanisms(self) -> dict[str, str]:
        diagnosis = self.diagnosis()
        if diagnosis.problem:
            return {"refused": diagnosis.problem}
        host = self._cgroup_host()
        why = cgroups.host()[1] if self.cgroup_mode != "off" else "options.cgroups=off"
        by_cgroup = host.describe() if host is not None else {}
        if self.mode == "root":
            nproc = f"RLIMIT_NPROC {self.limits.max_processes} (the per-sandbox uid)"
            privilege = "setpriv to a per-sandbox host uid: no capabilities, empty bounding set, no_new_privs"
        else:
            scope = (
                "counted per user namespace"
                if _kernel_at_least(5, 14)
                else "kernel < 5.14: counts ALL of this user's processes"
            )
            nproc = f"RLIMIT_NPROC {self.limits.max_processes} ({scope})"
            privilege = (
                "user namespace: nobody (65534) inside, no capabilities, no_new_privs, "
                "no nested user namespaces"
            )
        processes = f"{by_cgroup['processes']} + {nproc}" if host else nproc
        memory = by_cgroup.get("memory") or (
            f"RLIMIT_AS {self.limits.memory_mb} MiB (address space, not "
            f"resident memory; no writable cgroup: {why})"
        )
        return {
            "mode": f"{self.mode}: {privilege}",
            "processes": processes,
            "memory": memory,
            "cpu": f"RLIMIT_CPU {self.limits.cpu_seconds} s"
            + (f" ({by_cgroup['cpu accounting']})" if host else ""),
            "wall clock": f"SIGKILL of bwrap after {self.limits.timeout:g} s (its pid namespace dies with it)",
            "network": "host network (limits.network=true)"
            if self.limits.network
            else "network namespace with loopback only",
            "system calls": diagnosis.facts.get("seccomp", "?"),
            "disk total": "NOT ENFORCED (workspace on the host disk; per-file RLIMIT_FSIZE only)",
            "cpu share": "NOT ENFORCED (CPU seconds per exec/cell only)",
        }

    def _args(self) -> list[str]:
        if self._base_args is not None:
            return self._base_args
        diagnosis = self.diagnosis()
        if diagnosis.problem:
            raise SandboxUnavailable(diagnosis.problem)
        features = _bwrap_features(self._bwrap)
        args = [self._bwrap]
        if self.mode == "user":
            args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
            if "--disable-userns" in features:
                args.append("--disable-userns")
            if "--cap-drop" in features:
                args += ["--cap-drop", "ALL"]
        args += [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--hostname",
            "sandbox",
        ]
        if not self.limits.network:
            args.append("--unshare-net")
        args += _system_binds()
        # The private /tmp comes before the interpreter binds: a venv that lives under the host's /tmp
        # (a CI checkout, say) is then bound on top of it instead of being hidden by it.
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(self.tmp_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
        ]
        made: set[str] = {"/tmp"}
        for path in _python_roots(self.python_path) + self._extra_binds:
            args += _ro_bind_with_parents(path, made)
        args += [
            "--perms",
            "0755",
            "--dir",
            "/opt",
            "--perms",
            "0755",
            "--dir",
            os.path.dirname(WORKER_PATH),
            "--ro-bind",
            str(WORKER_SOURCE),
            WORKER_PATH,
            "--bind",
            str(self.workspace),
            "/workspace",
            # The new root is a tmpfs the sandbox user owns in user mode: read-only, like root mode's.
            "--remount-ro",
            "/",
            "--clearenv",
        ]
        for key, value in self._env.items():
            args += ["--setenv", key, value]
        self._base_args = args
        return args

    def _command(self, argv: list[str], cwd: str, pid1: bool, fds: dict[str, int]) -> list[str]:
        """The host command line: bwrap, which reports its child's pid on ``fds["info"]`` and waits on
        ``fds["block"]`` until that child is in its cgroup and has its rlimits; it loads the seccomp
        program from ``fds["seccomp"]`` just before the command runs. Root mode then ``setpriv``s to
        the sandbox's uid. ``pid1``: the command is the namespace's pid 1 (no reaper process, 10-20 ms
        cheaper; its exit still kills every orphan). Workers keep the reaper, so daemonized children
        of cells do not pile up as zombies."""
        bwrap = self._args()
        flags = ["--info-fd", str(fds["info"]), "--block-fd", str(fds["block"])] + (
            ["--as-pid-1"] if pid1 else []
        )
        if "seccomp" in fds:
            flags += ["--seccomp", str(fds["seccomp"])]
        chdir = "/workspace" if cwd == "." else f"/workspace/{cwd}"
        command = [bwrap[0], *flags, *bwrap[1:], "--chdir", chdir, "--"]
        if self.mode == "root":
            uid = str(self.uid)
            command += [
                "setpriv",
                "--reuid",
                uid,
                "--regid",
                uid,
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        return command + argv

    def _rlimits(self, cold: bool, cgroup: cgroups.Cgroup | None) -> list[tuple[int, tuple[int, int]]]:
        limits = self.limits
        out = [
            (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
            (resource.RLIMIT_FSIZE, (limits.file_size_mb << 20, limits.file_size_mb << 20)),
            (resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes)),
        ]
        if cold:  # SIGXCPU at the soft limit (a timeout), SIGKILL a second later at the hard one
            out.append((resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)))
        if cgroup is None or "memory" not in getattr(self._cgroup_host(), "controllers", ("memory",)):
            out.append((resource.RLIMIT_AS, (limits.memory_mb << 20, limits.memory_mb << 20)))
        return out

    async def _spawn(
        self, argv: list[str], *, stdin: int | None, cwd: str = ".", cold: bool = True
    ) -> tuple[asyncio.subprocess.Process, cgroups.Cgroup | None]:
        """Start one bwrap instance in its own cgroup (exact OOM attribution and cleanup)."""
        self._check_open()
        try:
            return await self._spawn_instance(argv, stdin, cwd, cold)
        except OSError as exc:  # the host cannot start a sandbox (fds, processes, cgroups exhausted)
            raise SandboxUnavailable(f"could not start a bwrap sandbox: {exc}") from exc

    async def _spawn_instance(
        self, argv: list[str], stdin: int | None, cwd: str, cold: bool
    ) -> tuple[asyncio.subprocess.Process, cgroups.Cgroup | None]:
        self._args()  # refuses with the diagnosis before anything is made
        host = self._cgroup_host()
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        filter_r = seccomp.pipe_fd() if self.use_seccomp else -1
        proc = cgroup = None
        try:
            cgroup = host.create(self.limits) if host else None
            fds = {"info": info_w, "block": block_r} | ({"seccomp": filter_r} if filter_r >= 0 else {})
            spawning = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *self._command(argv, cwd, cold and cgroup is not None, fds),
                    stdin=stdin,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=tuple(fds.values()),
                    env={"PATH": HOST_PATH},
                    limit=1 << 24,
                    start_new_session=True,
                )
            )
            try:
                proc = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                # A process creation cancelled halfway leaves asyncio (3.11) waiting forever: the pipes
                # connect after the transport closed, and bwrap's inner process, blocked on the block fd,
                # holds them open. Let it finish; the handler below kills it and the fds close.
                proc = await _finish(spawning)
                raise
            for fd in fds.values():
                os.close(fd)
            info_w = block_r = filter_r = -1
            info = await asyncio.wait_for(_read_all(info_r), 60)
            child = json.loads(info).get("child-pid") if info.strip() else None
            proc.ns_pid = child  # type: ignore[attr-defined]  # the sandbox's pid 1, seen from the host
            if child:  # before the child runs anything: its cgroup, then its limits
                if cgroup is not None:
                    for procs in cgroup.procs_files:
                        with open(procs, "w") as f:
                            f.write(str(child))
                for which, value in self._rlimits(cold, cgroup):
                    resource.prlimit(child, which, value)
            try:
                os.write(block_w, b"x")
            except BrokenPipeError:  # bwrap already failed; its stderr and exit code tell why
                pass
        except BaseException:
            if proc is not None:
                _kill_group(proc)
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            for fd in (info_r, info_w, block_r, block_w, filter_r):
                if fd >= 0:
                    os.close(fd)
        self._procs.add(proc)
        if cgroup is not None:
            self._cgroups.add(cgroup)
        return proc, cgroup

    def _reap(self, proc: asyncio.subprocess.Process, cgroup: cgroups.Cgroup | None) -> None:
        """Kill an instance (SIGKILL to the outer bwrap tears down its pid namespace) and wait until
        its cgroup is empty, so its process slots are free for the next exec."""
        _kill_group(proc)
        if cgroup is not None:
            cgroup.remove()
            self._cgroups.discard(cgroup)
        self._procs.discard(proc)

    # -- the protocol ----------------------------------------------------------------------------------

    def _has_dir(self, workdir: str) -> bool:
        return (self.workspace / workdir).is_dir()

    async def _exec(self, argv: list[str], workdir: str, data: bytes | None, timeout: float) -> ExecResult:
        started = time.monotonic()
        proc, cgroup = await self._spawn(
            argv,
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            cwd=workdir,
        )
        out, err = CappedBuffer(self.limits.output_bytes), CappedBuffer(self.limits.output_bytes)
        assert proc.stdout is not None and proc.stderr is not None  # _spawn pipes both
        readers = [
            asyncio.create_task(read_capped(proc.stdout, out)),
            asyncio.create_task(read_capped(proc.stderr, err)),
        ]
        feeder = asyncio.create_task(_feed(proc, data)) if data is not None else None
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
            duration = time.monotonic() - started
            oom = cgroup.oom_kills() > 0 if cgroup else False
            # As pid 1 the command ignores SIGXCPU; the hard CPU limit's SIGKILL shows in the CPU counter.
            cpu_out = cgroup is not None and cgroup.cpu_seconds() >= self.limits.cpu_seconds
            self._reap(proc, cgroup)
            await asyncio.wait(readers, timeout=2.0)
        finally:
            for task in [*readers, feeder]:
                if task is not None and not task.done():
                    task.cancel()
            self._reap(proc, cgroup)
        return exec_result(
            None if timed_out else shell_exit_code(proc.returncode),
            out,
            err,
            timeout=timeout,
            timed_out=timed_out,
            oom=oom,
            duration=duration,
            cpu_limit=self.limits.cpu_seconds if cpu_out else None,
        )

    async def write_file(self, path: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else bytes(content)
        self._check_open()
        await asyncio.to_thread(files.write_confined, self.workspace, path, data, self._owner)

    async def read_file(self, path: str) -> bytes:
        self._check_open()
        return await asyncio.to_thread(files.read_confined, self.workspace, path)

    async def upload(self, source_dir: str, dest: str = ".") -> None:
        self._check_open()
        await asyncio.to_thread(files.upload_tree, self.workspace, source_dir, dest, self._owner)

    async def _launch_worker(self, worker_args: list[str]) -> BwrapWorker | ZygoteWorker:
        if self.use_zygote:
            return await self._launch_zygote_session(worker_args)
        argv = [self.python_path, "-I", WORKER_PATH, *worker_args]
        proc, cgroup = await self._spawn(argv, stdin=asyncio.subprocess.PIPE, cold=False)
        return BwrapWorker(self, proc, cgroup)

    async def _launch_zygote_session(self, worker_args: list[str]) -> ZygoteWorker:
        """A session forked by the zygote into a fresh sandbox whose command is a placeholder (``cat``
        on a pipe only the host holds)."""
        zygote = await _zygote(self.python_path, self.preload)
        holder, cgroup = await self._spawn(["/bin/cat"], stdin=asyncio.subprocess.PIPE, cold=False)
        pipes = [os.pipe() for _ in range(5)]  # stdin, stdout, stderr, block, status
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (block_r, block_w), (status_r, status_w) = pipes
        try:
            target = await _holder_pid(holder)
            limits = self.limits
            rlimits = [
                (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
                (resource.RLIMIT_FSIZE, limits.file_size_mb << 20, limits.file_size_mb << 20),
                (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
            ]
            if cgroup is None or "memory" not in getattr(self._cgroup_host(), "controllers", ("memory",)):
                rlimits.append((resource.RLIMIT_AS, limits.memory_mb << 20, limits.memory_mb << 20))
            request = {
                "target": target,
                "userns": self.mode == "user",
                "rlimits": rlimits,
                "uid": self.uid if self.mode == "root" else None,
                "worker_args": worker_args,
            }
            zygote.send(request, [in_r, out_w, err_w, block_r, status_w])
        finally:
            for fd in (in_r, out_w, err_w, block_r, status_w):
                os.close(fd)
        worker = await ZygoteWorker.connect(self, holder, cgroup, in_w, out_r, err_r, status_r)
        try:
            await worker.send(
                json.dumps(self._env).encode() + b"\n"
            )  # straight to the session, past the zygote
            pid = await worker.session_pid()
            if cgroup is not None:
                for procs in cgroup.procs_files:
                    with open(procs, "w") as f:
                        f.write(str(pid))
            os.write(block_w, b"x")
        except BaseException:
            await worker.kill()
            raise
        finally:
            os.close(block_w)
        return worker

    async def _teardown(self) -> None:
        await asyncio.to_thread(self._kill_sync)

    def _kill_sync(self) -> None:
        self._closed = True
        for proc in list(self._procs):
            _kill_group(proc)
        for cgroup in list(self._cgroups):
            cgroup.remove()
        self._cgroups.clear()
        _rmtree(self.workspace)
        _LIVE.discard(self)

    def __repr__(self) -> str:
        return f"BwrapSandbox(mode={self.mode}, workspace={str(self.workspace)!r}, uid={self.uid})"


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL to the instance's process group (bwrap starts a session of its own): the outer bwrap and its
    inner one, which is orphaned for good if the outer dies while the inner still waits on their handshake."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # not this user's group (cannot happen for our own sessions): the outer alone
        if proc.returncode is None:
            proc.kill()


async def _finish(spawning: asyncio.Future) -> asyncio.subprocess.Process | None:
    """The process a cancelled ``create_subprocess_exec`` goes on to start (None if it failed), waited for
    through further cancellations (the caller re-raises the first one)."""
    while not spawning.done():
        try:
            await asyncio.shield(spawning)
        except asyncio.CancelledError:
            continue
        except BaseException:
            break
    if spawning.cancelled() or spawning.exception() is not None:
        return None
    return spawning.result()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def _read_all(fd: int) -> bytes:
    """Everything a pipe delivers until EOF, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            return data
        data += chunk


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None  # spawned with stdin=PIPE whenever there is data
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


class _SessionProcess:
    """What both kinds of bwrap session share: the bwrap instance the session lives in (killing it kills
    the session with its pid namespace), the tail of the session's stderr, the crash report, and the kill."""

    def __init__(
        self,
        sandbox: BwrapSandbox,
        proc: asyncio.subprocess.Process,
        cgroup: cgroups.Cgroup | None,
        stderr: asyncio.StreamReader,
    ):
        self.sandbox, self.proc, self.cgroup = sandbox, proc, cgroup
        self.stderr = CappedBuffer(16384)
        self._stderr_task = asyncio.create_task(read_capped(stderr, self.stderr))

    async def _crash_report(self, returncode: int | None, oom: bool) -> tuple[ExecStatus, int | None, str]:
        """The status, the shell-style exit code and the stderr tail of a session that ended."""
        await asyncio.wait([self._stderr_task], timeout=1.0)
        code = shell_exit_code(returncode)
        tail = decode(bytes(self.stderr.data))
        return classify(code, timed_out=False, oom=oom, stderr=tail), code, tail

    def _close_pipes(self) -> None:
        """Close what the session's own pipes hold open (nothing beyond the process by default)."""

    async def kill(self) -> None:
        self.sandbox._reap(self.proc, self.cgroup)
        try:
            await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            pass
        self._close_pipes()
        if not self._stderr_task.done():
            self._stderr_task.cancel()


class BwrapWorker(_SessionProcess):
    """A running worker process: the session's view of one bwrap instance."""

    def __init__(
        self, sandbox: BwrapSandbox, proc: asyncio.subprocess.Process, cgroup: cgroups.Cgroup | None
    ):
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None  # all piped
        super().__init__(sandbox, proc, cgroup, proc.stderr)
        self._stdin, self._stdout = proc.stdin, proc.stdout

    async def send(self, data: bytes) -> None:
        self._stdin.write(data)
        await self._stdin.drain()

    async def readline(self) -> bytes:
        return await self._stdout.readline()

    async def crash_status(self) -> tuple[ExecStatus, int | None, str]:
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            pass
        oom = self.cgroup.oom_kills() > 0 if self.cgroup else False
        if self.proc.returncode is None:
            self.sandbox._reap(self.proc, self.cgroup)
            try:  # bounded: a pipe held by a process that outlived the kill would keep wait() pending
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except TimeoutError:
                pass
        return await self._crash_report(self.proc.returncode, oom)


# ------------------------------------------------------------------------------------------- zygote


class Zygote:
    """The host's handle on one zygote process (``envs/sandbox/zygote.py``): a process-wide, synchronous
    control socket, so it outlives any one event loop."""

    def __init__(self, python: str, preload: tuple[str, ...]):
        self.python, self.preload = python, preload
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        program = seccomp.pipe_fd()
        env = scrubbed_env()
        env["HOME"] = "/"
        try:
            self.proc = subprocess.Popen(
                [
                    python,
                    "-I",
                    str(Path(__file__).with_name("zygote.py")),
                    str(WORKER_SOURCE),
                    str(program),
                    str(theirs.fileno()),
                    ",".join(preload),
                ],
                pass_fds=(program, theirs.fileno()),
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(program)
            theirs.close()
        self.lock = threading.Lock()

    def wait_ready(self) -> None:
        self.control.settimeout(300)
        try:
            ready = self.control.recv(64)
        finally:
            self.control.settimeout(None)
        if ready != b"ready\n":
            raise SandboxUnavailable(f"the session zygote did not start (exit code {self.proc.poll()})")

    def send(self, request: dict[str, Any], fds: list[int]) -> None:
        with self.lock:
            try:
                self.control.sendmsg(
                    [json.dumps(request).encode()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
                )
            except OSError as exc:
                raise SandboxUnavailable(f"the session zygote is gone: {exc}") from exc

    def close(self) -> None:
        self.control.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_ZYGOTES: dict[tuple[str, tuple[str, ...]], Zygote] = {}
_ZYGOTE_LOCK = threading.Lock()


async def _zygote(python: str, preload: tuple[str, ...]) -> Zygote:
    key = (python, tuple(preload))

    def get() -> Zygote:
        with _ZYGOTE_LOCK:
            zygote = _ZYGOTES.get(key)
            if zygote is None or zygote.proc.poll() is not None:
                zygote = Zygote(python, tuple(preload))
                zygote.wait_ready()
                _ZYGOTES[key] = zygote
            return zygote

    return await asyncio.to_thread(get)


@atexit.register
def _stop_zygotes() -> None:
    for zygote in list(_ZYGOTES.values()):
        zygote.close()
    _ZYGOTES.clear()


async def _holder_pid(holder: asyncio.subprocess.Process) -> int:
    """The placeholder command's host pid (a child of the sandbox's pid 1), whose namespaces the
    session joins; the pid 1 itself if the placeholder is not there yet after a few tries."""
    init = getattr(holder, "ns_pid", None)
    if not init:
        raise SandboxUnavailable("bwrap did not report the sandbox's pid 1")
    for _ in range(200):
        try:
            children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        await asyncio.sleep(0.005)
    return int(init)


class ZygoteWorker(_SessionProcess):
    """A zygote-forked session: its pipes, its sandbox's bwrap (killing that kills the session with the
    pid namespace) and the helper's status pipe (``pid N``, then ``exit CODE``)."""

    def __init__(
        self,
        sandbox: BwrapSandbox,
        holder: asyncio.subprocess.Process,
        cgroup: cgroups.Cgroup | None,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        status: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ):
        super().__init__(sandbox, holder, cgroup, stderr)
        self.writer, self.reader, self.status = writer, reader, status
        self.pid: int | None = None
        self.exit_code: int | None = None

    @classmethod
    async def connect(
        cls,
        sandbox: BwrapSandbox,
        holder: asyncio.subprocess.Process,
        cgroup: cgroups.Cgroup | None,
        in_w: int,
        out_r: int,
        err_r: int,
        status_r: int,
    ) -> ZygoteWorker:
        loop = asyncio.get_running_loop()

        async def read_stream(fd: int) -> asyncio.StreamReader:
            reader = asyncio.StreamReader(limit=1 << 24)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
            return reader

        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(in_w, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return cls(
            sandbox,
            holder,
            cgroup,
            writer,
            await read_stream(out_r),
            await read_stream(status_r),
            await read_stream(err_r),
        )

    async def session_pid(self) -> int:
        line = (await asyncio.wait_for(self.status.readline(), 60)).decode().split()
        if len(line) != 2 or line[0] != "pid":
            raise SandboxUnavailable(f"the zygote could not start a session: {' '.join(line) or 'no answer'}")
        self.pid = int(line[1])
        return self.pid

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def readline(self) -> bytes:
        return await self.reader.readline()

    async def _exit_code(self, timeout: float) -> int | None:
        if self.exit_code is None:
            try:
                line = (await asyncio.wait_for(self.status.readline(), timeout)).decode().split()
                if len(line) == 2 and line[0] == "exit":
                    self.exit_code = int(line[1])
            except (TimeoutError, ValueError):
                pass
        return self.exit_code

    async def crash_status(self) -> tuple[ExecStatus, int | None, str]:
        code = await self._exit_code(2.0)
        oom = self.cgroup.oom_kills() > 0 if self.cgroup else False
        await self.kill()
        return await self._crash_report(code, oom)

    def _close_pipes(self) -> None:
        self.writer.close()
