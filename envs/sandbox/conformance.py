"""The sandbox conformance suite: one adversarial property per check, the same for every backend.

Each check is a plain async function taking a ``Harness`` (which builds sandboxes of the backend under
test) and returning a short detail string, or raising ``CheckFailed``. The pytest suite
(``tests/sandbox``) and ``agentkit sandbox check`` both run these functions. A backend's known gaps
are listed in ``KNOWN_GAPS`` and reported as gaps, never silently skipped.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentkit.envs.sandbox import seccomp_filter as seccomp
from agentkit.errors import ToolError
from agentkit.sandbox import ExecResult, ExecStatus, Sandbox, SandboxLimits, create_sandbox

SLACK = 5.0
"""Seconds a killed sandbox may take beyond its deadline on a loaded 2-core machine."""


class CheckFailed(AssertionError):
    """The backend does not have the property a check tests."""


def expect(condition: bool, message: str, result: ExecResult | None = None) -> None:
    if not condition:
        if result is not None:
            message += (
                f" [status={result.status.value} exit={result.exit_code} "
                f"stdout={result.stdout[-300:]!r} stderr={result.stderr[-500:]!r}]"
            )
        raise CheckFailed(message)


@dataclass
class Harness:
    """Builds sandboxes of one backend for the checks (limits tightened per check)."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    memo: dict[Any, Any] = field(default_factory=dict)
    """Results shared by several checks (the seccomp probes run once per harness)."""

    def sandbox(self, options: dict[str, Any] | None = None, **limits: Any) -> Sandbox:
        return create_sandbox(
            self.backend, limits=replace(self.limits, **limits), **{**self.options, **(options or {})}
        )

    def light(self) -> dict[str, Any]:
        """Options for a session that need not preload sympy/numpy (cheap to start many at once)."""
        return {"preload": []}


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[Harness], Awaitable[str]]
    slow: bool = False


CHECKS: dict[str, Check] = {}


def check(description: str, slow: bool = False):
    def register(fn: Callable[[Harness], Awaitable[str]]) -> Callable[[Harness], Awaitable[str]]:
        name = fn.__name__.removeprefix("check_")
        CHECKS[name] = Check(name, description, fn, slow)
        return fn

    return register


_ENGINE = "the container engine's default seccomp profile (not agentkit's filter) allows "
KNOWN_GAPS: dict[str, dict[str, str]] = {
    "bwrap": {},
    "docker": {
        "seccomp_ptrace": _ENGINE + "ptrace within the container (kernel >= 4.8)",
        "seccomp_mount": _ENGINE + "mount/umount2 to reach the kernel's own checks (no CAP_SYS_ADMIN)",
        "seccomp_namespaces": _ENGINE + "unshare/setns to reach the kernel's own checks",
        "seccomp_keyring": _ENGINE + "keyctl (Podman's profile)",
        "seccomp_open_by_handle_at": _ENGINE
        + "name_to_handle_at (open_by_handle_at needs CAP_DAC_READ_SEARCH)",
    },
}
"""backend -> check name -> why the backend lacks that property (reported as a gap)."""


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


# ------------------------------------------------------------------------------------------ basics


@check("exec basics: argv and shell strings, stdin, exit codes, cwd, stderr")
async def check_exec_basics(h: Harness) -> str:
    async with h.sandbox() as sb:
        upper = await sb.exec(py("import sys; print(sys.stdin.read().upper())"), stdin="hello sandbox")
        shell = await sb.exec("echo out; echo err >&2; exit 7")
        await sb.write_file("sub/f.txt", "in sub")
        where = await sb.exec(["cat", "f.txt"], cwd="sub")
        missing = await sb.exec(["no-such-command-xyz"])
    expect(upper.ok and upper.stdout == "HELLO SANDBOX\n", "stdin did not reach the command", upper)
    expect(
        shell.status == ExecStatus.error and shell.exit_code == 7, "a non-zero exit was not an error", shell
    )
    expect(shell.stdout == "out\n" and shell.stderr == "err\n", "stdout/stderr were mixed up", shell)
    expect(where.ok and where.stdout == "in sub", "cwd is not relative to the workspace", where)
    expect(missing.status == ExecStatus.error, "a missing command did not return an error result", missing)
    return f"exit {shell.exit_code}, missing command -> exit {missing.exit_code}"


# ------------------------------------------------------------------------------------------ network


@check("no network: a loopback port the host opened is unreachable")
async def check_network_loopback(h: Harness) -> str:
    accepted = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with h.sandbox(timeout=20) as sb:
            code = (
                "import socket\ns = socket.socket(); s.settimeout(3)\n"
                f"try:\n    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
                "except OSError as e:\n    print('BLOCKED', type(e).__name__)\n"
            )
            result = await sb.exec(py(code))
    finally:
        server.close()
        await server.wait_closed()
    expect(
        result.ok and "BLOCKED" in result.stdout, "the sandbox could reach the host's loopback port", result
    )
    expect(accepted == 0, f"the host listener accepted {accepted} connection(s) from the sandbox")
    return result.stdout.strip()


@check("no network: outside addresses and DNS fail; only a loopback interface exists")
async def check_network_outside(h: Harness) -> str:
    code = (
        "import socket\nout = []\n"
        "for host, port in [('1.1.1.1', 53), ('8.8.8.8', 443), ('151.101.0.223', 443)]:\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    try:\n        s.connect((host, port)); out.append('open:' + host)\n"
        "    except OSError:\n        out.append('blocked')\n"
        "try:\n    socket.getaddrinfo('pypi.org', 443); out.append('dns-ok')\n"
        "except OSError:\n    out.append('dns-blocked')\n"
        "print(' '.join(out)); print('IFACES', ','.join(sorted(n for _, n in socket.if_nameindex())))\n"
    )
    async with h.sandbox(timeout=30) as sb:
        result = await sb.exec(py(code))
    expect(result.ok, "the network probe failed to run", result)
    expect(
        "open:" not in result.stdout and "dns-ok" not in result.stdout,
        "an outside address was reachable",
        result,
    )
    ifaces = result.stdout.split("IFACES", 1)[1].strip().split(",")
    expect(set(ifaces) <= {"lo"}, f"network interfaces other than loopback: {ifaces}", result)
    return f"interfaces: {','.join(ifaces)}"


# ------------------------------------------------------------------------------------- host secrets


@check("host files unreadable: a secret file in the host's home")
async def check_host_files(h: Harness) -> str:
    token = secrets.token_hex(16)
    path = Path.home() / f".agentkit-conformance-{token[:8]}"
    path.write_text(token)
    try:
        async with h.sandbox() as sb:
            code = (
                f"p = {str(path)!r}\ntry:\n    print(open(p).read())\nexcept OSError as e:\n"
                "    print('DENIED', type(e).__name__)\n"
                "import os\nfor d in ['/root', '/home', os.path.dirname(p)]:\n"
                "    try:\n        print(d, os.listdir(d))\n    except OSError as e:\n        print(d, 'DENIED')\n"
            )
            result = await sb.exec(py(code))
            session = await (await sb.python()).run(f"open({str(path)!r}).read()")
    finally:
        path.unlink(missing_ok=True)
    expect(result.ok and "DENIED" in result.stdout, "reading the host secret file did not fail", result)
    expect(token not in result.stdout + result.stderr, "the host secret leaked into exec output", result)
    expect(
        token not in session.stdout + session.stderr and not session.ok,
        "the host secret leaked into a session cell",
        session,
    )
    expect(path.name not in result.stdout, "the host home directory listing is visible", result)
    return "secret file not found inside"


@check("host environment variables absent (exec and session)")
async def check_host_env(h: Harness) -> str:
    name, token = "AGENTKIT_CONFORMANCE_SECRET", secrets.token_hex(16)
    os.environ[name] = token
    try:
        async with h.sandbox() as sb:
            result = await sb.exec(["env"])
            cell = await (await sb.python()).run("import os; print(sorted(os.environ.items()))")
    finally:
        os.environ.pop(name, None)
    expect(result.ok and "PATH=" in result.stdout, "env did not run", result)
    for leaked in (token, name):
        expect(leaked not in result.stdout, f"host variable {name} visible to exec", result)
        expect(leaked not in cell.stdout, f"host variable {name} visible to the session", cell)
    for host_var in ("DOCKER_HOST", "SSH_AUTH_SOCK", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "OPENAI_API_KEY"):
        if os.environ.get(host_var):
            expect(os.environ[host_var] not in result.stdout, f"host {host_var} visible to exec", result)
    keys = sorted(line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line)
    return f"{len(keys)} variables: {','.join(keys)}"


@check("not root inside: the sandboxed process has an unprivileged uid and no capabilities")
async def check_unprivileged(h: Harness) -> str:
    code = (
        "import os\nprint(os.getuid(), os.geteuid(), os.getgid())\n"
        "st = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "print(st['CapEff'].strip(), st['CapPrm'].strip(), st['NoNewPrivs'].strip(), st['Seccomp'].strip())\n"
    )
    async with h.sandbox() as sb:
        result = await sb.exec(py(code))
    expect(result.ok, "the uid probe failed", result)
    ids, status = result.stdout.split("\n")[:2]
    cap_eff, cap_prm, nnp, mode = status.split()
    expect("0" not in ids.split()[:2], f"the sandboxed process runs as root ({ids})", result)
    expect(
        int(cap_eff, 16) == 0 and int(cap_prm, 16) == 0,
        f"the sandboxed process has capabilities {cap_eff}",
        result,
    )
    expect(nnp == "1", "no_new_privs is not set (a setuid binary could regain privileges)", result)
    return f"uid/euid/gid {ids}; no capabilities; no_new_privs; seccomp mode {mode}"


# ------------------------------------------------------------------------------------------ files


@check("no writes outside the workspace (system dirs fail, private /tmp does not reach the host)")
async def check_writes_outside(h: Harness) -> str:
    marker = f"agentkit-conformance-{secrets.token_hex(6)}"
    targets = [
        f"/{marker}",
        f"/usr/{marker}",
        f"/etc/{marker}",
        f"/usr/lib/{marker}",
        f"/opt/{marker}",
        f"/var/{marker}",
        f"/root/{marker}",
    ]
    code = (
        "import os\nres = {}\n"
        f"for p in {targets!r}:\n"
        "    try:\n        open(p, 'w').write('x'); res[p] = 'WROTE'\n"
        "    except OSError as e:\n        res[p] = type(e).__name__\n"
        f"open('/tmp/{marker}', 'w').write('private')\n"
        "open('/workspace/inside.txt', 'w').write('ok')\nprint(res)\n"
    )
    async with h.sandbox() as sb:
        result = await sb.exec(py(code))
        inside = await sb.read_file("inside.txt")
    expect(result.ok, "the write probe failed", result)
    expect("WROTE" not in result.stdout, "the sandbox wrote outside its workspace", result)
    # os.path.exists: an unprivileged host user may not stat /root at all (Path.exists raises there).
    expect(not any(os.path.exists(t) for t in targets), "a file appeared on the host outside the workspace")
    expect(not os.path.exists(f"/tmp/{marker}"), "the sandbox's /tmp is the host's /tmp")
    expect(inside == b"ok", "a file written in the workspace is not readable from the host")
    return f"{len(targets)} system paths refused"


@check("workspace-confined read_file/write_file: traversal and symlinks rejected")
async def check_file_confinement(h: Harness) -> str:
    rejected = []
    async with h.sandbox() as sb:
        for bad in ["../escape.txt", "/etc/passwd", "a/../../escape.txt", "/workspace/../etc/x"]:
            try:
                await sb.write_file(bad, "x")
            except ToolError:
                rejected.append(f"write {bad}")
            else:
                raise CheckFailed(f"write_file({bad!r}) was accepted")
        result = await sb.exec(
            [
                "/bin/sh",
                "-c",
                "ln -s /etc/hostname leak && ln -s / rootlink && mkdir d && ln -s /etc d/etc && echo done",
            ]
        )
        expect(result.ok, "could not make the symlinks", result)
        for bad in ["leak", "rootlink/etc/hostname", "d/etc/hostname"]:
            try:
                data = await sb.read_file(bad)
            except (ToolError, FileNotFoundError):
                rejected.append(f"read {bad}")
            else:
                raise CheckFailed(
                    f"read_file({bad!r}) followed a symlink out of the workspace: {data[:80]!r}"
                )
        for bad in ["leak", "rootlink/tmp/x"]:
            try:
                await sb.write_file(bad, "x")
            except (ToolError, FileNotFoundError):
                rejected.append(f"write {bad}")
            else:
                raise CheckFailed(f"write_file({bad!r}) followed a symlink out of the workspace")
        await sb.write_file("sub/dir/ok.txt", "fine")
        expect(await sb.read_file("sub/dir/ok.txt") == b"fine", "a nested workspace file did not round-trip")
        cat = await sb.exec(["cat", "sub/dir/ok.txt"])
        expect(cat.stdout == "fine", "a file written from the host is not visible inside", cat)
    return f"{len(rejected)} escapes rejected"


@check("upload of a directory (repository tasks)")
async def check_upload(h: Harness) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pkg").mkdir()
        (root / "pkg" / "__init__.py").write_text("VALUE = 7\n")
        (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
        (root / "run.sh").chmod(0o755)
        async with h.sandbox() as sb:
            await sb.upload(tmp, "repo")
            result = await sb.exec(
                ["/bin/sh", "-c", "./run.sh && python3 -c 'import pkg; print(pkg.VALUE)'"], cwd="repo"
            )
    expect(result.ok and result.stdout.split() == ["ran", "7"], "the uploaded tree is not usable", result)
    return "2 files uploaded and run"


# ----------------------------------------------------------------------------------------- limits


@check("fork bomb contained (process cap), host unharmed, sandbox usable after")
async def check_fork_bomb(h: Harness) -> str:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    async with h.sandbox(max_processes=32, timeout=3, cpu_seconds=10) as sb:
        started = time.monotonic()
        result = await sb.exec(py(code))
        elapsed = time.monotonic() - started
        after = await sb.exec(["echo", "alive"])
    expect(
        result.status in (ExecStatus.timeout, ExecStatus.killed, ExecStatus.error),
        "the fork bomb did not end in timeout/killed/error",
        result,
    )
    expect(elapsed < 3 + SLACK, f"the fork bomb took {elapsed:.1f} s to contain (deadline 3 s)")
    expect(after.ok and after.stdout.strip() == "alive", "the sandbox is unusable after a fork bomb", after)
    host = await asyncio.create_subprocess_exec("true")
    expect(await host.wait() == 0, "the host cannot start processes after the fork bomb")
    return f"{result.status.value} after {elapsed:.1f} s"


@check("memory bomb -> oom, host unharmed, sandbox usable after")
async def check_memory_bomb(h: Harness) -> str:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    async with h.sandbox(memory_mb=256, timeout=30) as sb:
        started = time.monotonic()
        result = await sb.exec(py(code))
        elapsed = time.monotonic() - started
        after = await sb.exec(["echo", "alive"])
    expect(result.status == ExecStatus.oom, "a memory bomb was not reported as oom", result)
    expect(after.ok, "the sandbox is unusable after a memory bomb", after)
    return f"oom after {elapsed:.1f} s"


@check("memory bomb in a session cell -> oom, and the session recovers")
async def check_session_memory_bomb(h: Harness) -> str:
    async with h.sandbox(memory_mb=256, timeout=30, options=h.light()) as sb:
        session = await sb.python()
        await session.run("keep = 1")
        result = await session.run(
            "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
        )
        after = await session.run("print('alive')")
    expect(result.status == ExecStatus.oom, "a session memory bomb was not reported as oom", result)
    expect(
        after.ok and after.stdout.strip() == "alive", "the session did not recover from a memory bomb", after
    )
    return f"oom, state_lost={result.state_lost}"


@check("infinite loop -> timeout within the bound")
async def check_infinite_loop(h: Harness) -> str:
    async with h.sandbox(timeout=1.0) as sb:
        started = time.monotonic()
        result = await sb.exec(py("while True: pass"))
        elapsed = time.monotonic() - started
    expect(result.status == ExecStatus.timeout, "an infinite loop was not reported as timeout", result)
    expect(1.0 <= elapsed < 1.0 + SLACK, f"the timeout fired after {elapsed:.2f} s (limit 1 s)")
    return f"timeout after {elapsed:.2f} s"


@check("CPU-time limit -> timeout")
async def check_cpu_limit(h: Harness) -> str:
    async with h.sandbox(cpu_seconds=1, timeout=20) as sb:
        started = time.monotonic()
        result = await sb.exec(py("while True: pass"))
        elapsed = time.monotonic() - started
    expect(result.status == ExecStatus.timeout, "a CPU-bound loop was not stopped by the CPU limit", result)
    expect(elapsed < 20, "the CPU limit did not fire before the wall-clock deadline")
    return f"stopped after {elapsed:.1f} s wall"


@check("file-size limit: writing past limits.file_size_mb fails")
async def check_file_size(h: Harness) -> str:
    code = "f = open('big.bin', 'wb')\nf.write(b'x' * (3 * 1024 * 1024))\nf.close()\nprint('WROTE')\n"
    async with h.sandbox(file_size_mb=1) as sb:
        result = await sb.exec(py(code))
        size = (await sb.exec(["stat", "-c", "%s", "big.bin"])).stdout.strip()
    expect(
        not result.ok and "WROTE" not in result.stdout, "a 3 MiB file was written under a 1 MiB limit", result
    )
    expect(not size or int(size) <= 1024 * 1024, f"big.bin grew to {size} bytes")
    return f"{result.status.value}, file {size or 0} bytes"


@check("background children killed at timeout (no orphans left)")
async def check_orphans(h: Harness) -> str:
    code = (
        "import os, subprocess, sys, time\n"
        'child = \'import time\\nwhile True:\\n    open("/workspace/heartbeat", "a").write("x")\\n'
        "    time.sleep(0.05)\\n'\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        "    subprocess.Popen([sys.executable, '-c', child], start_new_session=True)\n    os._exit(0)\n"
        "while True:\n    time.sleep(0.1)\n"
    )
    async with h.sandbox(timeout=1.5) as sb:
        result = await sb.exec(py(code))
        first = len(await sb.read_file("heartbeat"))
        await asyncio.sleep(0.5)
        second = len(await sb.read_file("heartbeat"))
        normal = await sb.exec(
            ["/bin/sh", "-c", "(while true; do echo x >> beat2; sleep 0.05; done) & sleep 0.3; exit 0"]
        )
        b1 = len(await sb.read_file("beat2"))
        await asyncio.sleep(0.5)
        b2 = len(await sb.read_file("beat2"))
    expect(result.status == ExecStatus.timeout, "the parent loop did not time out", result)
    expect(first > 0, "the background child never ran (test is void)")
    expect(second == first, f"a daemonized child kept running after the timeout ({first} -> {second} beats)")
    expect(normal.ok and b1 > 0, "the background shell loop never ran", normal)
    expect(b2 == b1, f"a background child outlived a normal exit ({b1} -> {b2} beats)")
    return f"heartbeat stopped at {first} and {b1} beats"


@check("huge output truncated and flagged (exec and session)")
async def check_huge_output(h: Harness) -> str:
    cap = 64 * 1024
    async with h.sandbox(output_bytes=cap, timeout=30, options=h.light()) as sb:
        result = await sb.exec(
            py("import sys\nsys.stdout.write('x' * 20_000_000)\nsys.stderr.write('e' * 5_000_000)")
        )
        session = await sb.python()
        cell = await session.run("print('y' * 20_000_000)")
        after = await session.run("print('small')")
    expect(result.ok, "a big write failed", result)
    expect(
        result.stdout_truncated and result.stderr_truncated,
        "huge output was not flagged as truncated",
        result,
    )
    expect(
        len(result.stdout.encode()) <= cap and len(result.stderr.encode()) <= cap, "output exceeded the cap"
    )
    expect(result.stdout.startswith("xxxx"), "the kept output is not the beginning of the stream", result)
    expect(
        cell.ok and cell.stdout_truncated and len(cell.stdout.encode()) <= cap,
        "session output was not capped and flagged",
        cell,
    )
    expect(after.stdout == "small\n" and not after.truncated, "the cap leaked into the next cell", after)
    return f"kept {len(result.stdout)} of 20000000 bytes"


@check("binary / invalid UTF-8 output decoded with replacement (exec and session)")
async def check_binary_output(h: Harness) -> str:
    code = "import os\nos.write(1, b'\\xff\\xfe\\x00abc\\x80\\xc3')\nos.write(2, b'\\xed\\xa0\\x80err')"
    async with h.sandbox(options=h.light()) as sb:
        result = await sb.exec(py(code))
        cell = await (await sb.python()).run(code)
    for res in (result, cell):
        expect(res.ok, "binary output broke the exec", res)
        expect("abc" in res.stdout and "\ufffd" in res.stdout, "invalid UTF-8 was not replaced", res)
        expect("err" in res.stderr, "binary stderr was lost", res)
    return repr(result.stdout)


# --------------------------------------------------------------------------------------- sessions


@check("session state persists across cells; preloaded modules are imported")
async def check_session_state(h: Harness) -> str:
    async with h.sandbox() as sb:
        session = await sb.python()
        first = await session.run("x = 41\nimport math")
        second = await session.run("print(x + 1, math.sqrt(16))")
        third = await session.run("import sys\n[m for m in ('sympy', 'numpy') if m in sys.modules]")
        started = time.monotonic()
        for _ in range(20):
            await session.run("x += 1")
        per_cell = (time.monotonic() - started) / 20
        last = await session.run("x")
    expect(first.ok and second.ok, "a simple cell failed", second)
    expect(second.stdout.strip() == "42 4.0", "state was not kept between cells", second)
    expect("sympy" in third.stdout and "numpy" in third.stdout, "sympy/numpy were not preloaded", third)
    expect(last.stdout.strip() == "61", "state drifted across 20 cells", last)
    return f"{per_cell * 1000:.1f} ms per cell"


@check("crashed session recovers, says state_lost, and starts clean")
async def check_session_crash(h: Harness) -> str:
    async with h.sandbox(options=h.light()) as sb:
        session = await sb.python()
        await session.run("x = 1")
        crash = await session.run("import os\nos._exit(7)")
        alive = await session.run("print('alive')")
        gone = await session.run("x")
    expect(crash.state_lost and crash.status != ExecStatus.ok, "a worker crash was not reported", crash)
    expect(alive.ok and alive.stdout == "alive\n", "the session did not recover after a crash", alive)
    expect(gone.status == ExecStatus.error and "NameError" in gone.stderr, "state survived a crash?", gone)
    return f"crash -> {crash.status.value}, exit {crash.exit_code}"


@check("session cell timeout restarts the worker, says state_lost")
async def check_session_timeout(h: Harness) -> str:
    async with h.sandbox(timeout=1.0, options=h.light()) as sb:
        session = await sb.python()
        started = time.monotonic()
        result = await session.run("while True: pass")
        elapsed = time.monotonic() - started
        after = await session.run("print('alive')", timeout=30)
    expect(
        result.status == ExecStatus.timeout and result.state_lost, "a stuck cell was not a timeout", result
    )
    expect(elapsed < 1.0 + SLACK, f"the cell timeout fired after {elapsed:.1f} s")
    expect(after.ok and after.stdout == "alive\n", "the session did not come back after a timeout", after)
    return f"timeout after {elapsed:.2f} s"


@check("32 concurrent sandboxes with sessions, all correct")
async def check_concurrency(h: Harness, n: int = 32) -> str:
    async def one(i: int) -> tuple[int, str, str]:
        async with h.sandbox(timeout=60, options=h.light()) as sb:
            await sb.write_file("n.txt", str(i))
            session = await sb.python()
            await session.run(f"v = {i} * {i}")
            cell = await session.run("print(v + int(open('n.txt').read()))")
            result = await sb.exec(["cat", "n.txt"])
            return i, cell.stdout.strip(), result.stdout.strip()

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    wrong = [(i, cell, ex) for i, cell, ex in results if cell != str(i * i + i) or ex != str(i)]
    expect(not wrong, f"{len(wrong)} of {n} concurrent sandboxes gave wrong answers: {wrong[:3]}")
    return f"{n} sandboxes in {elapsed:.1f} s"


# --------------------------------------------------------------------------------------- isolation


@check("sessions are separate: one sandbox cannot see or signal another's processes")
async def check_cross_session(h: Harness) -> str:
    marker = f"agentkit-peer-{secrets.token_hex(6)}"
    async with h.sandbox(options=h.light(), timeout=30) as a, h.sandbox(options=h.light(), timeout=30) as b:
        peer = await b.python()
        started = await peer.run(
            "import subprocess\nMARK = 1\n"
            f"bg = subprocess.Popen(['/bin/sh', '-c', 'sleep 600; : {marker}'])\n"
            "bg.poll() is None"
        )
        expect(started.ok and "True" in started.stdout, "the peer session could not start a process", started)
        await (await a.python()).run("x = 1")
        # The marker is spelled backwards in the probe, so the probe's own command line cannot match.
        look = (
            f"import os\nneedle = {marker[::-1]!r}[::-1].encode()\nseen, hits = 0, 0\n"
            "for p in os.listdir('/proc'):\n    if p.isdigit():\n        seen += 1\n"
            "        try:\n            hits += needle in open(f'/proc/{p}/cmdline', 'rb').read()\n"
            "        except OSError:\n            pass\n"
            "print(seen, hits)\n"
        )
        visible = await a.exec(py(look))
        in_session = await (await a.python()).run(look)
        kill = await a.exec(["/bin/sh", "-c", "kill -9 -1; echo sent"])
        after = await peer.run("print(MARK, bg.poll() is None)")
    expect(visible.ok and in_session.ok, "the process listing failed", visible)
    seen, hits = map(int, visible.stdout.split())
    expect(
        hits == 0 and in_session.stdout.split()[1] == "0",
        "a sandbox sees the other sandbox's process",
        visible,
    )
    expect(
        after.ok and after.stdout.strip() == "1 True",
        "a kill -9 -1 in one sandbox reached the other sandbox's session or its child",
        after,
    )
    return f"exec sees {seen} process(es), none of the peer; kill -9 -1 -> {kill.status.value}, peer alive"


@check("a session holds no descriptor of the host's (no socket, no file outside the sandbox)")
async def check_session_descriptors(h: Harness) -> str:
    code = (
        "import json, os\nout = []\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
        "        out.append(os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError:\n        pass\n"
        "print(json.dumps(out))"
    )
    async with h.sandbox(options=h.light()) as sb:
        cell = await (await sb.python()).run(code)
        result = await sb.exec(py(code))
    for res in (cell, result):
        expect(res.ok, "the descriptor probe failed", res)
        links = json.loads(res.stdout.strip())
        bad = [
            link
            for link in links
            if link.startswith("socket:")
            or (link.startswith("/") and not link.startswith(("/dev/null", "/proc/", "/workspace", "/tmp")))
        ]
        expect(not bad, f"descriptors reach outside the sandbox: {bad}", res)
    return f"session: {len(json.loads(cell.stdout.strip()))} descriptors, all pipes or its own files"


@check("a new session holds nothing of another sandbox's environment in its memory")
async def check_session_memory(h: Harness) -> str:
    token = secrets.token_hex(16)
    half1, half2 = token[:16], token[16:]
    # The scan never builds the token: it finds the first half, then compares the next 16 bytes.
    scan = (
        f"h1 = {half1[::-1]!r}[::-1].encode()\nh2 = {half2[::-1]!r}[::-1].encode()\n"
        "found = scanned = 0\n"
        "with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
        "    for line in maps:\n"
        "        addr, perms = line.split()[:2]\n"
        "        if 'r' not in perms:\n            continue\n"
        "        start, end = (int(x, 16) for x in addr.split('-'))\n"
        "        try:\n            mem.seek(start)\n            data = mem.read(end - start)\n"
        "        except (OSError, ValueError, OverflowError):\n            continue\n"
        "        scanned += len(data)\n        at = data.find(h1)\n"
        "        while at >= 0:\n"
        "            found += data[at + 16:at + 32] == h2\n            at = data.find(h1, at + 1)\n"
        "print(found, scanned)\n"
    )
    async with h.sandbox(options={"env": {"AGENTKIT_PEER_SECRET": token}}, timeout=60) as a:
        holder = await (await a.python()).run("import os\nlen(os.environ['AGENTKIT_PEER_SECRET'])")
        expect(
            holder.ok and holder.stdout.strip() == "32",
            "the first session did not get its environment",
            holder,
        )
        async with h.sandbox(timeout=60) as b:
            result = await (await b.python()).run(scan)
    expect(result.ok and len(result.stdout.split()) == 2, "the memory scan failed", result)
    found, scanned = map(int, result.stdout.split())
    expect(scanned > 1 << 20, f"the scan read only {scanned} bytes (void)", result)
    expect(found == 0, "the other sandbox's secret is in this session's memory", result)
    return f"scanned {scanned >> 20} MiB of its own memory, no trace of the other sandbox's secret"


# ------------------------------------------------------------------------------------------ seccomp


def _controlled(backend: str) -> bool:
    """Whether the backend can run a sandbox without its seccomp filter (the control run)."""
    return "seccomp" in _backend_options(backend)


async def _syscall_probe(h: Harness, filtered: bool) -> dict[str, int]:
    """``call -> errno`` (0: it succeeded) for every probe, run once per harness and filter state."""
    key = ("seccomp", filtered)
    if key not in h.memo:
        options = {**h.light(), **({} if filtered else {"seccomp": False, "zygote": False})}
        if not filtered:
            options = {k: v for k, v in options.items() if k in _backend_options(h.backend)}
        source = seccomp.probe_source(seccomp.syscall_numbers())
        async with h.sandbox(options=options, timeout=30) as sb:
            result = await sb.exec(py(source))
            # Filtered, a session cell must see the same denials (a zygote-forked session loads the
            # filter itself, apart from bwrap).
            cell = await (await sb.python()).run(source) if filtered else result
        for res in (result, cell):
            expect(res.ok and bool(res.stdout.strip()), "the system-call probe failed to run", res)
        answers = json.loads(result.stdout.strip().splitlines()[-1])
        in_session = json.loads(cell.stdout.strip().splitlines()[-1])
        differ = {k: (v, in_session.get(k)) for k, v in answers.items() if in_session.get(k) != v}
        expect(not differ, f"exec and session cell disagree on the filter: {differ}")
        h.memo[key] = answers
    return h.memo[key]


def _backend_options(backend: str) -> dict[str, Any]:
    from agentkit.registry import SANDBOXES

    return getattr(SANDBOXES.get(backend), "OPTIONS", {})


def _seccomp_check(group: seccomp.Group) -> None:
    async def run(h: Harness) -> str:
        denied = await _syscall_probe(h, True)
        control = await _syscall_probe(h, False) if _controlled(h.backend) else None
        probed = [name for name, _ in group.probes if name in denied]
        expect(bool(probed), f"no call of group {group.name} exists on this architecture")
        notes, proven = [], 0
        for name in probed:
            got = denied[name]
            if control is None:  # another engine's filter: EPERM is its usual answer
                expect(got in (errno.ENOSYS, errno.EPERM), f"{name} was not denied (errno {got})")
                notes.append(f"{name}:{errno.errorcode.get(got, got)}")
                continue
            expect(
                got == seccomp.DENY_ERRNO,
                f"{name} was not denied by the filter: errno {got} "
                f"({errno.errorcode.get(got, 'success') if got else 'success'})",
            )
            if control[name] == errno.ENOSYS:
                notes.append(f"{name}: absent from this kernel")
            else:
                proven += 1
                unfiltered = errno.errorcode.get(control[name], "success") if control[name] else "success"
                notes.append(f"{name}: ENOSYS (unfiltered: {unfiltered})")
        if control is not None and proven == 0:  # every call of the group is missing from this kernel
            return "; ".join(notes) + " (the kernel lacks the whole group: denied with or without the filter)"
        return "; ".join(notes)

    run.__name__ = f"check_seccomp_{group.name}"
    calls = ", ".join(group.calls[:6]) + (", ..." if len(group.calls) > 6 else "")
    check(f"seccomp denies {group.name} ({calls}): {group.why}")(run)


for _group in seccomp.GROUPS:
    _seccomp_check(_group)


async def run_check(name: str, harness: Harness, ignore_gaps: bool = False) -> tuple[str, str]:
    """(outcome, detail): outcome is ``pass``, ``fail`` or ``gap`` (a known, listed gap, not run unless
    ``ignore_gaps``)."""
    gap = KNOWN_GAPS.get(harness.backend, {}).get(name)
    if gap and not ignore_gaps:
        return "gap", gap
    try:
        return "pass", await CHECKS[name].run(harness)
    except CheckFailed as exc:
        return "fail", str(exc)
    except Exception as exc:  # an unexpected error is a failed check, shown to the user
        return "fail", f"{type(exc).__name__}: {exc}"
