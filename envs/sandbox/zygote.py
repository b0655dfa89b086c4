"""The warm-session zygote of the bwrap backend (``options.zygote=true``): one process per interpreter that
imports the preloaded modules (sympy, numpy) once, then forks each new session into the namespaces of a
fresh bubblewrap sandbox, so sessions share those modules' memory copy-on-write instead of importing them
again (density), and start without an interpreter start-up and import (latency).

Per session, bwrap still builds the sandbox exactly as for a plain worker (user or root mode, mounts,
workspace, network, /proc, /tmp), running a placeholder as its command. The zygote forks a helper that
joins that sandbox's namespaces with ``setns`` (user namespace first in user mode, the mount namespace
last), and the helper forks the session process inside the sandbox's pid namespace. Before it runs any
cell the session process drops to the sandbox's identity (root mode: the per-sandbox uid, no groups),
empties its capability sets and bounding set, sets no_new_privs, lowers its rlimits, loads the same
seccomp program as every other sandboxed process, closes every descriptor but its own pipes, and waits
until the host has put it into the sandbox's cgroup. Killing the sandbox's bwrap kills it with the pid
namespace, as any process of that sandbox.

The zygote itself is a host process (the invoking user, or root in root mode) that runs only the worker
and the preloaded modules' import code, with a scrubbed environment; sandboxed code never holds a
descriptor of it and cannot see it (another pid namespace).

This file runs as a script (standard library only): ``python -I zygote.py WORKER_PATH FILTER_FD CONTROL_FD
MODULE,...``.
"""

import ctypes
import fcntl
import gc
import importlib.util
import json
import os
import resource
import signal
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
NAMESPACES = [
    ("user", CLONE_NEWUSER),
    ("ipc", CLONE_NEWIPC),
    ("uts", CLONE_NEWUTS),
    ("net", CLONE_NEWNET),
    ("cgroup", CLONE_NEWCGROUP),
    ("pid", CLONE_NEWPID),
    ("mnt", CLONE_NEWNS),
]
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 24, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER, PR_SET_DUMPABLE = 4, 2, 4
MAX_FDS = 8
NS_GET_PARENT = 0xB702

libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _drop_privileges(request, program):
    """Become the sandbox's unprivileged process: identity, capabilities, no_new_privs, rlimits, seccomp."""
    for cap in range(64):  # the bounding set first, while CAP_SETPCAP is still held
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break
    uid = request.get("uid")
    if uid is not None:  # root mode: the per-sandbox host uid (user mode: the mapped user, nobody inside)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # what an execve would leave: /proc/self is the session's own
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = bytes(24)  # effective, permitted, inheritable: all zero (two 32-bit words each)
    _check(libc.syscall(126 if os.uname().machine == "x86_64" else 91, header, data), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for which, soft, hard in request["rlimits"]:
        resource.setrlimit(which, (soft, hard))
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Filter(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def _user_chain(target):
    """The user namespaces from just below this process's own down to the target's, outermost first
    (bwrap's ``--disable-userns`` nests one inside the namespace that owns the others)."""
    own = os.stat("/proc/self/ns/user").st_ino
    chain = [os.open(f"/proc/{target}/ns/user", os.O_RDONLY)]
    while True:
        try:
            parent = fcntl.ioctl(chain[0], NS_GET_PARENT)
        except OSError:
            break
        if os.fstat(parent).st_ino == own:
            os.close(parent)
            break
        chain.insert(0, parent)
    return chain


def _join(target, userns):
    """setns into every namespace of ``target``: the others as soon as a user namespace that holds the
    capabilities over them is joined, the innermost user namespace last."""
    others = [
        (os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY), flag, name)
        for name, flag in NAMESPACES
        if name != "user"
    ]
    levels = _user_chain(target) if userns else [None]
    for level in levels:
        if level is not None:
            _check(libc.setns(level, CLONE_NEWUSER), "setns user")
            os.close(level)
        pending = []
        for fd, flag, name in others:
            if libc.setns(fd, flag) == 0:
                os.close(fd)
            else:
                pending.append((fd, flag, name))
        others = pending
    if others:
        _check(libc.setns(others[0][0], others[0][1]), f"setns {others[0][2]}")


def _tell(fd, line):
    """A line to the host on the status pipe; a host that stopped listening (the sandbox closed) is fine."""
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass


def _read_env():
    """The session's environment: the first line on its own stdin, written by the host, so that nothing
    of one sandbox (its ``options.env``) ever passes through the zygote's memory into a later session."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            raise EOFError("the host closed the session's stdin before its environment")
        line += chunk
    return json.loads(line)


def _session(request, fds, program, worker):
    """The helper (in the zygote's namespaces) joins the sandbox's, then forks the session into it."""
    stdin, stdout, stderr, block, status = fds
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        _join(request["target"], request["userns"])
        pid = os.fork()
    except OSError as exc:
        _tell(status, f"error {exc}")
        os._exit(1)
    if pid:
        _tell(status, f"pid {pid}")
        for fd in (stdin, stdout, stderr, block):
            os.close(fd)
        _, code = os.waitpid(pid, 0)
        _tell(status, f"exit {os.waitstatus_to_exitcode(code)}")
        os._exit(0)
    # the session process, pid namespace of the sandbox
    try:
        os.setsid()
        for src, dst in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(src, dst)
        os.closerange(3, block)
        os.closerange(block + 1, 65536)
        if os.read(block, 1) != b"x":  # the host puts this process into the sandbox's cgroup first
            os._exit(111)
        os.close(block)
        env = _read_env()
        os.chdir(request.get("cwd", "/workspace"))
        _drop_privileges(request, program)
        os.environ.clear()
        os.environ.update(env)
    except BaseException as exc:  # reported on the session's stderr, then it ends
        os.write(2, f"zygote session setup failed: {exc!r}\n".encode())
        os._exit(112)
    os._exit(worker.main(request["worker_args"]) or 0)


def main(argv):
    worker_path, filter_fd, control_fd, preload = argv[0], int(argv[1]), int(argv[2]), argv[3]
    program = b""
    while True:
        chunk = os.read(filter_fd, 1 << 16)
        if not chunk:
            break
        program += chunk
    os.close(filter_fd)
    spec = importlib.util.spec_from_file_location("agentkit_sandbox_worker", worker_path)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    for name in [m for m in preload.split(",") if m]:
        try:
            __import__(name)
        except Exception:  # the session reports it as preload_failed
            pass
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # helpers are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    control.sendall(b"ready\n")
    while True:
        try:
            message, ancillary, _, _ = control.recvmsg(1 << 16, socket.CMSG_SPACE(MAX_FDS * 4))
        except InterruptedError:
            continue
        if not message:
            return 0
        fds = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4]))
        request = json.loads(message)
        if os.fork() == 0:
            control.close()
            _session(request, fds, program, worker)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
