"""The ``docker`` backend: one container per sandbox through the Docker Engine API (the ``docker``
SDK). The same code runs against Podman's Docker-compatible socket (``.ci/podman.sh``).

Threat model:

Isolated
- Network: ``network_mode="none"`` (loopback only) unless ``limits.network``.
- Filesystem: read-only root filesystem; the workspace (``/workspace``) and ``/tmp`` are size-capped
  tmpfs mounts inside the container; no host path is mounted. ``read_file``/``write_file`` go through
  the archive API after checking (``HEAD .../archive``) that no path component is a symlink.
- Privilege: no sandboxed code runs as root. The container's keeper process is ``nobody``; the
  Python session has a uid of its own (100000+, random per sandbox) and every exec gets its own uid
  (2000-61999), all in group 1000, so ``RLIMIT_NPROC`` counts one exec (or the session) alone, a
  timeout kills exactly that exec's process tree (daemonized grandchildren included) and a normal
  exit kills whatever it left behind (``kill -9 -1`` as that uid). ``no-new-privileges``; every
  capability is dropped except ``KILL``, held only by agentkit's own root execs that kill a uid's
  processes (an exec as that uid could not start while a fork bomb holds all its process slots).
- Environment: built from constants; nothing of ``os.environ`` is sent to the engine.
- Limits: container-wide ``mem_limit`` (= ``memswap_limit``, so no swap) and ``pids_limit``
  (``max_processes`` plus a little headroom, so the exec that kills a fork bomb can still start),
  optional ``cpus``; per exec (its own uid) ``RLIMIT_NPROC`` = ``max_processes`` and rlimits on CPU
  time, file size and open files; a wall-clock deadline; output caps.
- Leaks: containers carry ``agentkit.*`` labels; containers of dead agentkit processes are reaped when
  the next sandbox starts, and this process removes its own at exit.

Not isolated (known gaps)
- Shared kernel, as for any container; the seccomp/AppArmor profile is the engine's default.
- Memory is capped per container (session and execs together), not per exec; an exec's ``oom`` is
  read from the container's cgroup OOM counter, so concurrent execs of one sandbox may share a verdict.
- Between the symlink check and the archive call, code still running in the sandbox could swap a
  directory for a symlink; the archive API then resolves it inside the container, never on the host.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import io
import itertools
import json
import os
import secrets
import socket as socketlib
import tarfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.envs.sandbox import files
from agentkit.envs.sandbox.base import (
    DEFAULT_PRELOAD,
    WORKER_SOURCE,
    CappedBuffer,
    SandboxBase,
    classify,
    decode,
    exec_result,
    process_alive,
    scrubbed_env,
)
from agentkit.errors import SandboxUnavailable
from agentkit.registry import SANDBOXES
from agentkit.sandbox import ExecResult, ExecStatus, SandboxLimits

if TYPE_CHECKING:
    from docker.models.containers import Container

DEFAULT_IMAGE = "agentkit-sandbox:latest"
SOCKET_CANDIDATES = ("/var/run/docker.sock", "/run/agentkit-podman.sock", "/run/podman/podman.sock")
LABEL = "agentkit.sandbox"
KEEPER_USER = "65534:65534"
GROUP = 1000
PIDS_HEADROOM = 16
"""Container pids beyond ``max_processes``: the keeper, the session, and the exec that kills a fork bomb."""
GO_MODE_DIR, GO_MODE_SYMLINK = 1 << 31, 1 << 27

_EXECUTOR = ThreadPoolExecutor(max_workers=96, thread_name_prefix="agentkit-docker")
_CLIENTS: dict[str, Any] = {}
_REAPED: set[str] = set()
_LIVE: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()
_uid_counter = itertools.count(secrets.randbelow(60000))


def base_url() -> str | None:
    """``DOCKER_HOST`` if set, else the first local Docker/Podman socket that exists."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    for path in SOCKET_CANDIDATES:
        if Path(path).exists():
            return f"unix://{path}"
    return None


def client(url: str | None = None):
    url = url or base_url()
    if url is None:
        raise SandboxUnavailable('no Docker-API socket: set DOCKER_HOST (e.g. `eval "$(.ci/podman.sh)"`)')
    if url not in _CLIENTS:
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - docker is a core dependency
            raise SandboxUnavailable("the docker SDK is not installed (pip install docker)") from exc
        try:
            _CLIENTS[url] = docker.DockerClient(base_url=url, timeout=120)
        except Exception as exc:  # any failure here means no usable engine
            raise SandboxUnavailable(f"cannot connect to the Docker API at {url}: {exc}") from exc
    return _CLIENTS[url]


def socket_status(url: str | None = None) -> tuple[bool, str]:
    """(reachable, why not / what answered) for the Docker-API socket."""
    url = url or base_url()
    if url is None:
        return False, "DOCKER_HOST is unset and no socket exists at " + ", ".join(SOCKET_CANDIDATES)
    try:
        import docker

        probe = docker.DockerClient(base_url=url, timeout=5)
        probe.ping()
        version = probe.version().get("Version", "?")
        probe.close()
        return True, f"{url} (engine {version})"
    except Exception as exc:  # reported to the user as the reason
        return False, f"{url} does not answer: {exc}"


def reap_containers(docker_client, max_age: float | None = None) -> int:
    """Remove sandbox containers whose agentkit process on this host is gone (or older than ``max_age``)."""
    removed = 0
    host = socketlib.gethostname()
    for container in docker_client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels or {}
        pid = labels.get("agentkit.pid", "")
        created = float(labels.get("agentkit.created", "0") or 0)
        dead = labels.get("agentkit.host") == host and pid.isdigit() and not process_alive(int(pid))
        stale = max_age is not None and time.time() - created > max_age
        if dead or stale:
            try:
                container.remove(force=True)
                removed += 1
            except Exception:  # already gone or being removed by its owner
                pass
    return removed


@atexit.register
def _remove_leftovers() -> None:
    for sandbox in list(_LIVE):
        sandbox._remove_sync()


async def _call(fn, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, partial(fn, *args, **kwargs))


def _api_error(exc: Exception) -> bool:
    import docker.errors
    import requests.exceptions

    return isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException, OSError))


class _ExecStream:
    """One exec's hijacked socket: stdin in, multiplexed stdout/stderr frames out (read on a thread)."""

    def __init__(self, sock: Any):
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)

    def send(self, data: bytes) -> None:
        self.raw.sendall(data)

    def close_stdin(self) -> None:
        try:
            self.raw.shutdown(socketlib.SHUT_WR)
        except OSError:
            pass

    def frames(self):
        from docker.utils.socket import frames_iter

        try:
            yield from frames_iter(self.sock, tty=False)
        except (OSError, ValueError):
            return

    def close(self) -> None:
        for closer in (self.raw, self.sock):
            try:
                closer.close()
            except Exception:  # closing twice or a dead socket
                pass


@SANDBOXES.register("docker")
class DockerSandbox(SandboxBase):
    """A container per sandbox; cold execs via the exec API and one warm Python session."""

    BACKEND = "docker"
    OPTIONS: dict[str, Any] = {
        "image": DEFAULT_IMAGE,
        "base_url": None,  # Docker-API URL (default: DOCKER_HOST, then local sockets)
        "python": "python3",
        "preload": list(DEFAULT_PRELOAD),
        "env": {},
        "tmp_mb": 256,
        "workspace_mb": 1024,
        "cpus": None,  # CPU share (e.g. 1.0); None: no cap
        "runtime": None,  # OCI runtime name, if the engine should not use its default
    }

    def __init__(self, limits: SandboxLimits | None = None, **options: Any):
        super().__init__(limits, options)
        opts = self.options
        self.image = opts["image"]
        self.url = opts["base_url"]
        self.python_path = opts["python"]
        self.tmp_mb, self.workspace_mb = int(opts["tmp_mb"]), int(opts["workspace_mb"])
        self.cpus, self.runtime = opts["cpus"], opts["runtime"]
        self._env = scrubbed_env(opts["env"])
        self.container: Container | None = None
        self._start_lock = asyncio.Lock()
        self._streams: set[_ExecStream] = set()
        self._oom_seen = 0
        self.name = f"agentkit-{os.getpid()}-{secrets.token_hex(4)}"
        self.session_uid = 100_000 + secrets.randbelow(900_000)

    @property
    def _live(self) -> Container:
        """The container, for the calls that need it running (``start()`` made it, ``close()`` removes it)."""
        if self.container is None:
            raise SandboxUnavailable("the sandbox's container is not running")
        return self.container

    # -- container lifecycle ---------------------------------------------------------------------------

    def _create_sync(self):
        import docker.errors
        from docker.types import Ulimit

        dc = client(self.url)
        url = self.url or base_url() or ""
        if url not in _REAPED:
            _REAPED.add(url)
            reap_containers(dc)
        limits = self.limits
        memory = f"{limits.memory_mb}m"
        kwargs: dict[str, Any] = dict(
            name=self.name,
            detach=True,
            user=KEEPER_USER,
            working_dir="/",
            network_mode="bridge" if limits.network else "none",
            read_only=True,
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=limits.max_processes + PIDS_HEADROOM,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={self.tmp_mb}m,mode=1777",
                "/workspace": f"rw,nosuid,nodev,size={self.workspace_mb}m,mode=0777",
            },
            ulimits=[
                Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                Ulimit(name="nproc", soft=1024, hard=1024),
            ],
            cap_drop=["ALL"],
            cap_add=["KILL"],
            security_opt=["no-new-privileges"],
            environment=self._env,
            labels={
                LABEL: "1",
                "agentkit.pid": str(os.getpid()),
                "agentkit.host": socketlib.gethostname(),
                "agentkit.created": f"{time.time():.0f}",
            },
            hostname="sandbox",
        )
        if self.cpus:
            kwargs["nano_cpus"] = int(float(self.cpus) * 1e9)
        if self.runtime:
            kwargs["runtime"] = self.runtime
        try:
            return dc.containers.run(self.image, ["sleep", "infinity"], **kwargs)
        except docker.errors.ImageNotFound as exc:
            raise SandboxUnavailable(
                f"sandbox image {self.image!r} not found: build it with `docker build -t {self.image} "
                "envs/sandbox/image` or, offline, envs/sandbox/image/build_offline.sh"
            ) from exc

    def refusal(self) -> str | None:
        ok, where = socket_status(self.url)
        return (
            None
            if ok
            else f'no Docker-API socket ({where}): start one with `eval "$(bash .ci/podman.sh)"` or set DOCKER_HOST'
        )

    def diagnosis_facts(self) -> dict[str, str]:
        return {"Docker API": socket_status(self.url)[1], "image": self.image}

    def _limit_mechanisms(self) -> dict[str, str]:
        limits = self.limits
        return {
            "mode": "container: keeper as nobody, each exec its own uid, the session a uid of its own; "
            "all capabilities dropped but KILL (held only by agentkit's own kill execs), no-new-privileges",
            "processes": f"container pids_limit {limits.max_processes + PIDS_HEADROOM} + RLIMIT_NPROC "
            f"{limits.max_processes} per exec uid",
            "memory": f"container cgroup mem_limit = memswap_limit {limits.memory_mb} MiB (session and execs together)",
            "cpu": f"RLIMIT_CPU {limits.cpu_seconds} s per exec"
            + (f"; {self.cpus} CPUs" if self.cpus else ""),
            "wall clock": f"SIGKILL of the exec's uid after {limits.timeout:g} s",
            "network": "host bridge (limits.network=true)"
            if limits.network
            else "network_mode=none (loopback only)",
            "system calls": "the engine's default seccomp profile (not agentkit's filter)",
            "disk total": f"workspace tmpfs {self.workspace_mb} MiB, /tmp tmpfs {self.tmp_mb} MiB",
            "cpu share": f"{self.cpus} CPUs" if self.cpus else "NOT ENFORCED (options.cpus unset)",
        }

    async def _start(self) -> None:
        if self.container is not None:
            return
        async with self._start_lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox is closed")
            if self.container is not None:
                return
            try:
                container = await _call(self._create_sync)
            except SandboxUnavailable:
                raise
            except Exception as exc:
                if _api_error(exc):
                    raise SandboxUnavailable(f"could not start a sandbox container: {exc}") from exc
                raise
            self.container = container
            _LIVE.add(self)
            if self._closed:
                await _call(self._remove_sync)
                raise SandboxUnavailable("the sandbox is closed")

    @property
    def api(self):
        return client(self.url).api

    def _remove_sync(self) -> None:
        for stream in list(self._streams):
            stream.close()
        container, self.container = self.container, None
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # already gone
                pass
        _LIVE.discard(self)

    async def _teardown(self) -> None:
        async with self._start_lock:
            await _call(self._remove_sync)

    # -- processes -------------------------------------------------------------------------------------

    def _open_exec(self, argv: list[str], user: str, workdir: str, stdin: bool) -> tuple[str, _ExecStream]:
        exec_id = self.api.exec_create(
            self._live.id,
            argv,
            stdin=stdin,
            stdout=True,
            stderr=True,
            user=user,
            workdir=workdir,
            environment=self._env,
        )["Id"]
        stream = _ExecStream(self.api.exec_start(exec_id, socket=True))
        self._streams.add(stream)
        return exec_id, stream

    def _kill_uid(self, uid: int) -> None:
        """SIGKILL every process of ``uid``: run as root with only CAP_KILL, since an exec as ``uid``
        itself cannot start while a fork bomb holds all of that uid's process slots."""
        script = f"for i in 1 2 3 4 5 6 7 8; do pkill -9 -U {uid} || exit 0; done"
        try:
            self._live.exec_run(["/bin/sh", "-c", script], user="0:0")
        except Exception:  # the container may be gone; close() removes it anyway
            pass

    def _oom_since_last(self) -> bool:
        """Whether the container's cgroup OOM-killed something since the last look."""
        try:
            output = self._live.exec_run(
                [
                    "/bin/sh",
                    "-c",
                    "cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null",
                ],
                user=KEEPER_USER,
            ).output
            assert isinstance(output, bytes)  # not streamed
            out = output.decode()
        except Exception:
            return False
        counts = [int(line.split()[1]) for line in out.splitlines() if line.startswith("oom_kill ")]
        total = max(counts, default=0)
        seen, self._oom_seen = self._oom_seen, total
        return total > seen

    def _exec_sync(
        self,
        argv: list[str],
        uid: int,
        workdir: str,
        data: bytes | None,
        out: CappedBuffer,
        err: CappedBuffer,
        holder: dict,
    ) -> int | None:
        limits = self.limits
        script = (
            f"umask 002; ulimit -S -t {limits.cpu_seconds}; ulimit -H -t {limits.cpu_seconds + 1}; "
            f"ulimit -f {limits.file_size_mb * 2048}; ulimit -p {limits.max_processes}; "
            '"$@"; rc=$?; kill -9 -1 2>/dev/null; exit $rc'
        )
        exec_id, stream = self._open_exec(
            ["/bin/sh", "-c", script, "sh", *argv], f"{uid}:{GROUP}", workdir, stdin=data is not None
        )
        holder["stream"] = stream
        try:
            if data is not None:
                feeder = threading.Thread(target=_feed, args=(stream, data), daemon=True)
                feeder.start()
            for stream_id, chunk in stream.frames():
                (err if stream_id == 2 else out).add(chunk)
        finally:
            stream.close()
            self._streams.discard(stream)
        return self.api.exec_inspect(exec_id).get("ExitCode")

    async def _exec(self, argv: list[str], workdir: str, data: bytes | None, timeout: float) -> ExecResult:
        await self.start()
        uid = 2000 + next(_uid_counter) % 60000
        out, err = CappedBuffer(self.limits.output_bytes), CappedBuffer(self.limits.output_bytes)
        holder: dict = {}
        started = time.monotonic()
        future = asyncio.ensure_future(
            _call(
                self._exec_sync,
                argv,
                uid,
                "/workspace" if workdir == "." else f"/workspace/{workdir}",
                data,
                out,
                err,
                holder,
            )
        )
        timed_out = False
        code = None
        try:
            code = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            timed_out = True
        except Exception as exc:
            if _api_error(exc):
                raise SandboxUnavailable(f"the sandbox container failed: {exc}") from exc
            raise
        finally:
            duration = time.monotonic() - started
            if not future.done():
                await _call(self._kill_uid, uid)
                try:
                    await asyncio.wait_for(asyncio.shield(future), 5.0)
                except BaseException:  # the stream is closed below either way
                    if holder.get("stream"):
                        holder["stream"].close()
        oom = False
        if not timed_out and code is not None and code > 128:
            oom = await _call(self._oom_since_last)
        return exec_result(code, out, err, timeout=timeout, timed_out=timed_out, oom=oom, duration=duration)

    # -- files -----------------------------------------------------------------------------------------

    def _stat(self, path: str) -> dict | None:
        url = self.api._url("/containers/{0}/archive", self._live.id)
        response = self.api.head(url, params={"path": path})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        header = response.headers.get("X-Docker-Container-Path-Stat")
        return json.loads(base64.b64decode(header)) if header else None

    def _check_no_symlinks(self, parts: list[str], last_must_exist: bool, last_is_dir: bool = False) -> str:
        """The deepest existing directory of the path; raises PathEscape on any symlink component."""
        deepest = "/workspace"
        for i, _part in enumerate(parts):
            path = "/workspace/" + "/".join(parts[: i + 1])
            info = self._stat(path)
            if info is None:
                if last_must_exist:
                    raise FileNotFoundError(f"no such file in the workspace: {'/'.join(parts)}")
                return deepest
            link = info.get("linkTarget") or ""
            mode = int(info.get("mode", 0))
            if mode & GO_MODE_SYMLINK or (link and link.rstrip("/") != path):
                raise files.PathEscape(
                    f"'{'/'.join(parts[: i + 1])}' is a symlink; symlinks are not followed"
                )
            is_dir = bool(info.get("isDir")) or bool(mode & GO_MODE_DIR)
            if i < len(parts) - 1 and not is_dir:
                raise files.PathEscape(f"'{'/'.join(parts[: i + 1])}' is not a directory")
            if i == len(parts) - 1 and is_dir and not last_is_dir:
                raise files.PathEscape(f"'{'/'.join(parts)}' is a directory, not a file")
            if is_dir:
                deepest = path
        return deepest

    def _write_sync(self, parts: list[str], data: bytes, mode: int = 0o664) -> None:
        base = self._check_no_symlinks(parts, last_must_exist=False)
        rel_base = base.removeprefix("/workspace").strip("/")
        depth = len(rel_base.split("/")) if rel_base else 0
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for i in range(depth, len(parts) - 1):
                info = tarfile.TarInfo("/".join(parts[depth : i + 1]))
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o2775, self.session_uid, GROUP
                tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts[depth:]))
            info.size, info.mode, info.uid, info.gid, info.mtime = (
                len(data),
                mode,
                self.session_uid,
                GROUP,
                time.time(),
            )
            tar.addfile(info, io.BytesIO(data))
        if not self.api.put_archive(self._live.id, base, buf.getvalue()):
            raise OSError(f"the engine refused to write {'/'.join(parts)}")

    def _read_sync(self, parts: list[str]) -> bytes:
        self._check_no_symlinks(parts, last_must_exist=True)
        stream, _ = self.api.get_archive(self._live.id, "/workspace/" + "/".join(parts))
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise files.PathEscape(f"'{'/'.join(parts)}' is not a regular file")
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file has contents
            return extracted.read()

    async def write_file(self, path: str, content: str | bytes) -> None:
        parts = files.workspace_parts(path)
        if not parts:
            raise files.PathEscape("write_file needs a file path, not the workspace root")
        await self.start()
        await self._files_call(
            self._write_sync, parts, content.encode() if isinstance(content, str) else bytes(content)
        )

    async def read_file(self, path: str) -> bytes:
        parts = files.workspace_parts(path)
        if not parts:
            raise files.PathEscape("read_file needs a file path, not the workspace root")
        await self.start()
        return await self._files_call(self._read_sync, parts)

    async def _files_call(self, fn, *args):
        import docker.errors

        try:
            return await _call(fn, *args)
        except docker.errors.NotFound as exc:
            raise FileNotFoundError(f"no such file in the workspace: {'/'.join(args[0])}") from exc
        except (files.PathEscape, FileNotFoundError):
            raise
        except Exception as exc:
            if _api_error(exc):
                raise SandboxUnavailable(f"the sandbox container failed: {exc}") from exc
            raise

    async def upload(self, source_dir: str, dest: str = ".") -> None:
        source = Path(source_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"upload source {str(source)!r} is not a directory")
        base = files.workspace_parts(dest)
        await self.start()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(source, arcname="/".join(base) or ".", filter=partial(_owned, uid=self.session_uid))
        if base:
            await _call(self._check_no_symlinks, base, False, True)
        await _call(self.api.put_archive, self._live.id, "/workspace", buf.getvalue())

    # -- the session -----------------------------------------------------------------------------------

    async def _launch_worker(self, worker_args: list[str]) -> DockerWorker:
        source = WORKER_SOURCE.read_text()
        script = f'umask 002; ulimit -p {self.limits.max_processes}; exec "$@"'
        argv = ["/bin/sh", "-c", script, "sh", self.python_path, "-I", "-c", source, *worker_args]
        try:
            exec_id, stream = await _call(
                self._open_exec, argv, f"{self.session_uid}:{GROUP}", "/workspace", True
            )
        except Exception as exc:
            if _api_error(exc):
                raise SandboxUnavailable(f"could not start the Python worker: {exc}") from exc
            raise
        return DockerWorker(self, exec_id, stream)


def _owned(info: tarfile.TarInfo, uid: int) -> tarfile.TarInfo:
    info.uid, info.gid, info.uname, info.gname = uid, GROUP, "", ""
    if info.isdir():
        info.mode = 0o2775
    elif info.isfile():
        info.mode = 0o775 if info.mode & 0o111 else 0o664
    return info


def _feed(stream: _ExecStream, data: bytes) -> None:
    try:
        stream.send(data)
    except OSError:
        pass
    stream.close_stdin()


class DockerWorker:
    """The session's view of a worker running as an exec with a hijacked stdin/stdout socket."""

    def __init__(self, sandbox: DockerSandbox, exec_id: str, stream: _ExecStream):
        self.sandbox, self.exec_id, self.stream = sandbox, exec_id, stream
        self.loop = asyncio.get_running_loop()
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        self.stderr = CappedBuffer(16384)
        self.done = asyncio.Event()
        self.reader = threading.Thread(target=self._read, daemon=True, name="agentkit-docker-worker")
        self.reader.start()

    def _read(self) -> None:
        pending = bytearray()
        try:
            for stream_id, chunk in self.stream.frames():
                if stream_id == 2:
                    self.stderr.add(chunk)
                    continue
                pending += chunk
                while (end := pending.find(b"\n")) >= 0:
                    line = bytes(pending[: end + 1])
                    del pending[: end + 1]
                    self.loop.call_soon_threadsafe(self.lines.put_nowait, line)
        finally:
            try:
                self.loop.call_soon_threadsafe(self.lines.put_nowait, b"")
                self.loop.call_soon_threadsafe(self.done.set)
            except RuntimeError:  # the loop is closed: nobody is waiting
                pass

    async def send(self, data: bytes) -> None:
        if len(data) < 65536:
            self.stream.send(data)
        else:
            await _call(self.stream.send, data)

    async def readline(self) -> bytes:
        line = await self.lines.get()
        if not line:
            self.lines.put_nowait(b"")  # stay at EOF for later readers
        return line

    async def crash_status(self) -> tuple[ExecStatus, int | None, str]:
        try:
            await asyncio.wait_for(self.done.wait(), 2.0)
        except TimeoutError:
            await self.kill()
        try:
            code = (await _call(self.sandbox.api.exec_inspect, self.exec_id)).get("ExitCode")
        except Exception:  # the container is gone
            code = None
        oom = await _call(self.sandbox._oom_since_last) if self.sandbox.container is not None else False
        tail = decode(bytes(self.stderr.data))
        return classify(code, timed_out=False, oom=oom, stderr=tail), code, tail

    async def kill(self) -> None:
        if self.sandbox.container is not None:
            await _call(self.sandbox._kill_uid, self.sandbox.session_uid)
        try:
            await asyncio.wait_for(self.done.wait(), 5.0)
        except TimeoutError:
            pass
        self.stream.close()
        self.sandbox._streams.discard(self.stream)
