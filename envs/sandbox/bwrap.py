"""The ``bwrap`` backend: every exec and every Python worker is a bubblewrap sandbox over one private
workspace directory.

Threat model (verified on the CI host: root, kernel 6.x, cgroup v1 ``pids``/``memory``/``cpuacct``):

Isolated
- Network: a new network namespace with only its own loopback (``limits.network=True`` shares the
  host's). Host loopback services and outside addresses are unreachable.
- Processes: new pid, ipc, uts and cgroup namespaces; the sandbox sees only its own processes.
  ``--die-with-parent``, and a new session without a controlling terminal (no TIOCSTI injection;
  ``setsid`` in the spawning child: bwrap's own ``--new-session`` costs ~10 ms). SIGKILL to the outer
  bwrap tears down the whole pid namespace, so at a timeout background children and daemonized
  orphans die with it; a normal exit of the command does the same.
- Privilege: bwrap runs as root to set up mounts, then ``setpriv`` drops the command to a per-sandbox
  unprivileged uid/gid (no supplementary groups, empty capability and bounding sets, no_new_privs).
  That uid is a real host uid, so ``RLIMIT_NPROC`` binds (it does not bind root), and files created
  in the workspace belong to nobody on the host. No user namespace is involved.
- Filesystem: a fresh root with read-only binds of ``/usr`` (and the ``/bin``, ``/lib*`` links), a
  few ``/etc`` files the dynamic loader reads, the Python installation(s) the worker needs, and
  nothing else of the host (no ``/etc/passwd``, ``/home``, ``/root``, ``/var``, sockets); private
  ``/proc``, ``/dev`` and a size-capped ``/tmp`` tmpfs; the workspace is the only writable host
  directory. Host-side ``read_file``/``write_file`` never follow symlinks (``agentkit.envs.sandbox.files``).
- Environment: built from constants (``PATH``, ``HOME``, locale, thread counts); nothing of
  ``os.environ`` reaches bwrap or the sandbox.
- Limits: each exec and each worker runs in its own cgroup (``pids.max`` stops fork bombs;
  ``memory.limit_in_bytes`` = memsw, so memory bombs are OOM-killed and reported as ``oom``), with
  rlimits on CPU seconds, file size, open files and processes, all applied by the host to bwrap's
  child (``--info-fd``/``--block-fd``) before it runs anything; a wall-clock deadline kills the tree;
  stdout/stderr are capped per stream. Without writable cgroups (or ``cgroups=false``) memory falls
  back to ``RLIMIT_AS`` and processes to ``RLIMIT_NPROC``; ``limits_report()`` says which applies.

Not isolated (known gaps)
- Same kernel as the host: a kernel exploit escapes. No seccomp filter is installed.
- Disk: the workspace lives on the host's disk; only single files are capped (``RLIMIT_FSIZE``), not
  the total a sandbox writes. CPU share is not capped, only CPU seconds per exec/cell.
- Read-only code: everything under ``/usr`` and the Python installations is readable inside.
- Limits are per exec/worker: a session and a concurrent exec of one sandbox may each use
  ``memory_mb``.
- cgroup v2-only hosts get the rlimit fallback (no per-instance memory cgroup there yet).
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from agentkit.errors import SandboxUnavailable
from agentkit.registry import SANDBOXES
from agentkit.sandbox import ExecResult, ExecStatus, SandboxLimits
from agentkit.envs.sandbox import files
from agentkit.envs.sandbox.base import (
    DEFAULT_PRELOAD,
    WORKER_SOURCE,
    CappedBuffer,
    WorkerSession,
    check_options,
    classify,
    decode,
    exec_request,
    process_alive,
    read_capped,
    scrubbed_env,
    shell_exit_code,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
WORKER_PATH = "/opt/agentkit/worker.py"
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_counter = itertools.count()


# --------------------------------------------------------------------------------------------- cgroups

class Cgroup:
    """One exec's or one worker's cgroup v1 directories (``pids`` and ``memory``)."""

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
            try:
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs.values():
            for _ in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last killed task exits
                    time.sleep(0.005)


class CgroupHost:
    """Where this process makes per-sandbox cgroups: ``<own cgroup>/agentkit-<pid>/<n>``."""

    CONTROLLERS = ("pids", "memory", "cpuacct")
    """``cpuacct`` tells a CPU-limit kill from another SIGKILL when the command runs as pid 1."""

    def __init__(self, parents: dict[str, Path]):
        self.parents = parents

    @classmethod
    def detect(cls) -> tuple[CgroupHost | None, str]:
        own: dict[str, str] = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, names, path = line.split(":", 2)
                for name in names.split(","):
                    own[name] = path
        except OSError as exc:
            return None, f"cannot read /proc/self/cgroup ({exc})"
        parents: dict[str, Path] = {}
        for controller in cls.CONTROLLERS:
            mount = CGROUP_ROOT / controller
            if controller not in own or not (mount / "cgroup.procs").exists():
                return None, f"no cgroup v1 '{controller}' hierarchy at {mount}"
            base = mount / own[controller].lstrip("/")
            _reap_stale(base)
            parent = base / f"agentkit-{os.getpid()}"
            try:
                parent.mkdir(exist_ok=True)
            except OSError as exc:
                return None, f"cannot create cgroups under {base} ({exc.strerror})"
            parents[controller] = parent
        return cls(parents), "cgroup v1 pids+memory+cpuacct"

    def create(self, limits: SandboxLimits) -> Cgroup:
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
            Cgroup(dirs).remove()
            raise
        return Cgroup(dirs)

    def cleanup(self) -> None:
        for parent in self.parents.values():
            _reap_dir(parent)


def _reap_dir(parent: Path) -> None:
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.is_dir():
            Cgroup({"x": child}).remove()
    try:
        parent.rmdir()
    except OSError:
        pass


def _reap_stale(base: Path) -> None:
    """Remove cgroups left by agentkit processes that died without cleaning up."""
    try:
        entries = list(base.glob("agentkit-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.removeprefix("agentkit-")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            _reap_dir(entry)


_CGROUPS: tuple[CgroupHost | None, str] | None = None


def cgroup_host() -> tuple[CgroupHost | None, str]:
    global _CGROUPS
    if _CGROUPS is None:
        _CGROUPS = CgroupHost.detect() if os.geteuid() == 0 else (None, "not running as root")
        if _CGROUPS[0] is not None:
            atexit.register(_CGROUPS[0].cleanup)
    return _CGROUPS


def limits_report() -> dict[str, str]:
    """How each limit is enforced on this host (shown by ``agentkit sandbox check``)."""
    host, how = cgroup_host()
    return {
        "processes": "cgroup pids.max + RLIMIT_NPROC (unprivileged uid)" if host else "RLIMIT_NPROC (unprivileged uid)",
        "memory": "cgroup memory.limit_in_bytes (OOM kill -> oom)" if host else f"RLIMIT_AS ({how})",
        "cpu": "RLIMIT_CPU", "file size": "RLIMIT_FSIZE", "open files": "RLIMIT_NOFILE",
        "wall clock": "SIGKILL of the pid namespace", "network": "network namespace",
    }


# --------------------------------------------------------------------------------------------- sandbox

_LIVE: weakref.WeakSet[BwrapSandbox] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for sandbox in list(_LIVE):
        sandbox._kill_sync()


def _python_roots(python: str) -> list[str]:
    """Directories a host interpreter needs, outside ``/usr`` (venv and base installation)."""
    roots: list[str] = []
    candidates = [os.path.dirname(os.path.dirname(os.path.abspath(python))),
                  os.path.dirname(os.path.dirname(os.path.realpath(python)))]
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


@SANDBOXES.register("bwrap")
class BwrapSandbox:
    """A bubblewrap sandbox: a private workspace, cold execs and one warm Python session."""

    OPTIONS: dict[str, Any] = {
        "python": None,           # interpreter inside the sandbox (default: this one, with its packages)
        "preload": list(DEFAULT_PRELOAD),
        "ro_binds": [],           # extra host paths, bound read-only at the same place
        "env": {},                # extra environment variables (the rest is scrubbed)
        "tmp_mb": 256,            # size of the private /tmp
        "workspace_root": None,   # host directory for workspaces (default: $TMPDIR/agentkit-sandboxes)
        "bwrap": "bwrap",
        "cgroups": True,          # per-instance cgroup v1 pids/memory/cpuacct when the host allows it
    }

    def __init__(self, limits: SandboxLimits | None = None, **options: Any):
        self.limits = limits or SandboxLimits()
        opts = check_options("bwrap", options, self.OPTIONS)
        self.python_path = opts["python"] or sys.executable
        self.preload = tuple(opts["preload"])
        self.tmp_mb = int(opts["tmp_mb"])
        self.use_cgroups = bool(opts["cgroups"])
        self._bwrap = shutil.which(opts["bwrap"]) or opts["bwrap"]
        self.uid = 10_000_000 + secrets.randbelow(1_000_000_000)
        root = Path(opts["workspace_root"] or Path(tempfile.gettempdir()) / "agentkit-sandboxes")
        root.mkdir(mode=0o711, exist_ok=True)
        self.workspace = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        os.chown(self.workspace, self.uid, self.uid)
        os.chmod(self.workspace, 0o770)
        env_path = ":".join([os.path.dirname(os.path.abspath(self.python_path)), "/usr/local/bin", "/usr/bin", "/bin"])
        self._env = scrubbed_env(opts["env"], path=env_path)
        self._extra_binds = [str(Path(p).resolve()) for p in opts["ro_binds"]]
        self._base_args: list[str] | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._cgroups: set[Cgroup] = set()
        self._session: WorkerSession | None = None
        self._closed = False
        _LIVE.add(self)

    # -- the command line ------------------------------------------------------------------------------

    def _args(self) -> list[str]:
        if self._base_args is not None:
            return self._base_args
        if not os.path.exists(self._bwrap) or not os.access(self._bwrap, os.X_OK):
            raise SandboxUnavailable("bubblewrap is not installed (apt-get install bubblewrap)")
        if os.geteuid() != 0:
            raise SandboxUnavailable("the bwrap backend drops to a per-sandbox uid and must be started as root")
        args = [self._bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--hostname", "sandbox"]
        if not self.limits.network:
            args.append("--unshare-net")
        args += _system_binds()
        # The private /tmp comes before the interpreter binds: a venv that lives under the host's /tmp
        # (a CI checkout, say) is then bound on top of it instead of being hidden by it.
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(self.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        made: set[str] = {"/tmp"}
        for path in _python_roots(self.python_path) + self._extra_binds:
            args += _ro_bind_with_parents(path, made)
        args += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", os.path.dirname(WORKER_PATH),
                 "--ro-bind", str(WORKER_SOURCE), WORKER_PATH,
                 "--bind", str(self.workspace), "/workspace", "--clearenv"]
        for key, value in self._env.items():
            args += ["--setenv", key, value]
        self._base_args = args
        return args

    def _command(self, argv: list[str], cwd: str, cold: bool, pid1: bool, info_fd: int,
                 block_fd: int) -> list[str]:
        """The host command line: bwrap, which reports its child's pid on ``info_fd`` and waits on
        ``block_fd`` until that child is in its cgroup and has its rlimits, then ``setpriv`` to the
        sandbox's uid. ``pid1``: the command is the namespace's pid 1 (no reaper process, 10-20 ms
        cheaper; its exit still kills every orphan). Workers keep the reaper, so daemonized children
        of cells do not pile up as zombies."""
        bwrap = self._args()
        flags = ["--info-fd", str(info_fd), "--block-fd", str(block_fd)] + (["--as-pid-1"] if pid1 else [])
        chdir = "/workspace" if cwd == "." else f"/workspace/{cwd}"
        uid = str(self.uid)
        return [bwrap[0], *flags, *bwrap[1:], "--chdir", chdir, "--",
                "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--", *argv]

    def _rlimits(self, cold: bool, cgroup: Cgroup | None) -> list[tuple[int, tuple[int, int]]]:
        limits = self.limits
        out = [(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
               (resource.RLIMIT_FSIZE, (limits.file_size_mb << 20, limits.file_size_mb << 20)),
               (resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))]
        if cold:  # SIGXCPU at the soft limit (a timeout), SIGKILL a second later at the hard one
            out.append((resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)))
        if cgroup is None:
            out.append((resource.RLIMIT_AS, (limits.memory_mb << 20, limits.memory_mb << 20)))
        return out

    async def _spawn(self, argv: list[str], *, stdin: int | None, cwd: str = ".",
                     cold: bool = True) -> tuple[asyncio.subprocess.Process, Cgroup | None]:
        """Start one bwrap instance in its own cgroup (exact OOM attribution and cleanup)."""
        if self._closed:
            raise SandboxUnavailable("the sandbox is closed")
        try:
            return await self._spawn_instance(argv, stdin, cwd, cold)
        except OSError as exc:  # the host cannot start a sandbox (fds, processes, cgroups exhausted)
            raise SandboxUnavailable(f"could not start a bwrap sandbox: {exc}") from exc

    async def _spawn_instance(self, argv: list[str], stdin: int | None, cwd: str,
                              cold: bool) -> tuple[asyncio.subprocess.Process, Cgroup | None]:
        host = cgroup_host()[0] if self.use_cgroups else None
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        proc = cgroup = None
        try:
            cgroup = host.create(self.limits) if host else None
            proc = await asyncio.create_subprocess_exec(
                *self._command(argv, cwd, cold, cold and cgroup is not None, info_w, block_r), stdin=stdin,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=(info_w, block_r),
                env={"PATH": HOST_PATH}, limit=1 << 24, start_new_session=True)
            os.close(info_w)
            os.close(block_r)
            info_w = block_r = -1
            info = await asyncio.wait_for(_read_all(info_r), 60)
            child = json.loads(info).get("child-pid") if info.strip() else None
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
            if proc is not None and proc.returncode is None:
                proc.kill()
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            for fd in (info_r, info_w, block_r, block_w):
                if fd >= 0:
                    os.close(fd)
        self._procs.add(proc)
        if cgroup is not None:
            self._cgroups.add(cgroup)
        return proc, cgroup

    def _reap(self, proc: asyncio.subprocess.Process, cgroup: Cgroup | None) -> None:
        """Kill an instance (SIGKILL to the outer bwrap tears down its pid namespace) and wait until
        its cgroup is empty, so its process slots are free for the next exec."""
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        if cgroup is not None:
            cgroup.remove()
            self._cgroups.discard(cgroup)
        self._procs.discard(proc)

    # -- the protocol ----------------------------------------------------------------------------------

    async def exec(self, cmd: list[str] | str, stdin: str | bytes | None = None,
                   timeout: float | None = None, cwd: str | None = None) -> ExecResult:
        timeout = self.limits.timeout if timeout is None else timeout
        request = exec_request(cmd, cwd)
        if isinstance(request, ExecResult):
            return request
        argv, workdir = request
        if workdir != "." and not (self.workspace / workdir).is_dir():
            return ExecResult(status=ExecStatus.error, stderr=f"cwd {cwd!r} is not a directory in the workspace")
        data = stdin.encode() if isinstance(stdin, str) else stdin
        started = time.monotonic()
        proc, cgroup = await self._spawn(argv, stdin=asyncio.subprocess.PIPE if data is not None else
                                         asyncio.subprocess.DEVNULL, cwd=workdir)
        out, err = CappedBuffer(self.limits.output_bytes), CappedBuffer(self.limits.output_bytes)
        readers = [asyncio.create_task(read_capped(proc.stdout, out)),
                   asyncio.create_task(read_capped(proc.stderr, err))]
        feeder = asyncio.create_task(_feed(proc, data)) if data is not None else None
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
            duration = time.monotonic() - started
            oom = cgroup.oom_kills() > 0 if cgroup else False
            # As pid 1 the command ignores SIGXCPU; the hard CPU limit's SIGKILL shows in cpuacct.
            cpu_out = cgroup is not None and cgroup.cpu_seconds() >= self.limits.cpu_seconds
            self._reap(proc, cgroup)
            await asyncio.wait(readers, timeout=2.0)
        finally:
            for task in [*readers, feeder]:
                if task is not None and not task.done():
                    task.cancel()
            self._reap(proc, cgroup)
        code = shell_exit_code(proc.returncode) if not timed_out else None
        stderr = err.text()
        status = classify(code, timed_out=timed_out, oom=oom, stderr=stderr)
        if status == ExecStatus.killed and cpu_out:
            status = ExecStatus.timeout
            stderr += f"[killed at the CPU-time limit of {self.limits.cpu_seconds} s]"
        if timed_out:
            stderr += f"{chr(10) if stderr and not stderr.endswith(chr(10)) else ''}[killed after {timeout:g} s wall-clock timeout]"
        return ExecResult(status=status, exit_code=code, stdout=out.text(), stderr=stderr,
                          stdout_truncated=out.truncated, stderr_truncated=err.truncated, duration=duration)

    async def write_file(self, path: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else bytes(content)
        self._check_open()
        await asyncio.to_thread(files.write_confined, self.workspace, path, data, (self.uid, self.uid))

    async def read_file(self, path: str) -> bytes:
        self._check_open()
        return await asyncio.to_thread(files.read_confined, self.workspace, path)

    async def upload(self, source_dir: str, dest: str = ".") -> None:
        self._check_open()
        await asyncio.to_thread(files.upload_tree, self.workspace, source_dir, dest, (self.uid, self.uid))

    async def python(self) -> WorkerSession:
        self._check_open()
        if self._session is None:
            self._session = WorkerSession(self._launch_worker, self.limits, self.preload)
        await self._session.start()
        return self._session

    async def _launch_worker(self, worker_args: list[str]) -> BwrapWorker:
        argv = [self.python_path, "-I", WORKER_PATH, *worker_args]
        proc, cgroup = await self._spawn(argv, stdin=asyncio.subprocess.PIPE, cold=False)
        return BwrapWorker(self, proc, cgroup)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxUnavailable("the sandbox is closed")

    async def close(self) -> None:
        if self._closed:
            return
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._closed = True
        await asyncio.to_thread(self._kill_sync)

    def _kill_sync(self) -> None:
        self._closed = True
        for proc in list(self._procs):
            if proc.returncode is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for cgroup in list(self._cgroups):
            cgroup.remove()
        self._cgroups.clear()
        shutil.rmtree(self.workspace, ignore_errors=True)
        _LIVE.discard(self)

    async def __aenter__(self) -> BwrapSandbox:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.close())

    def __repr__(self) -> str:
        return f"BwrapSandbox(workspace={str(self.workspace)!r}, uid={self.uid})"


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
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


class BwrapWorker:
    """A running worker process: the session's view of one bwrap instance."""

    def __init__(self, sandbox: BwrapSandbox, proc: asyncio.subprocess.Process, cgroup: Cgroup | None):
        self.sandbox, self.proc, self.cgroup = sandbox, proc, cgroup
        self.stderr = CappedBuffer(16384)
        self._stderr_task = asyncio.create_task(read_capped(proc.stderr, self.stderr))

    async def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def readline(self) -> bytes:
        return await self.proc.stdout.readline()

    async def crash_status(self) -> tuple[ExecStatus, int | None, str]:
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            pass
        oom = self.cgroup.oom_kills() > 0 if self.cgroup else False
        if self.proc.returncode is None:
            self.sandbox._reap(self.proc, self.cgroup)
            await self.proc.wait()
        await asyncio.wait([self._stderr_task], timeout=1.0)
        code = shell_exit_code(self.proc.returncode)
        tail = decode(bytes(self.stderr.data))
        return classify(code, timed_out=False, oom=oom, stderr=tail), code, tail

    async def kill(self) -> None:
        self.sandbox._reap(self.proc, self.cgroup)
        try:
            await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            pass
        if not self._stderr_task.done():
            self._stderr_task.cancel()
