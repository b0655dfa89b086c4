"""The warm Python session worker, run inside a sandbox (standard library only, Python >= 3.8).

It imports the preloaded modules once, then serves cells over its stdin/stdout as JSON lines:
request ``{"id": ..., "code": ..., "cpu": seconds}``, reply ``{"id": ..., "status": ..., "stdout": ...,
"stderr": ..., "stdout_truncated": ..., "stderr_truncated": ..., "exit_code": ...}``. Cell output is
captured at the file-descriptor level (so ``os.system`` and child processes are captured too) by
one drain thread per stream, each keeping at most ``--cap`` bytes per cell.
"""

import ast
import builtins
import fcntl
import gc
import io
import json
import linecache
import os
import resource
import select
import sys
import termios
import threading
import time
import traceback
import types


class Drain(threading.Thread):
    """Reads one output pipe; keeps the first ``cap`` bytes of the current cell, counts the rest."""

    def __init__(self, fd, cap):
        super().__init__(daemon=True)
        self.fd, self.cap = fd, cap
        self.cond = threading.Condition()
        self.buf = bytearray()
        self.dropped = 0
        os.set_blocking(fd, False)

    def run(self):
        while True:
            select.select([self.fd], [], [])
            with self.cond:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                room = self.cap - len(self.buf)
                if room > 0:
                    self.buf += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))
                self.cond.notify_all()

    def collect(self, patience=0.5):
        """The cell's output, once every byte written before this call has been drained (a child
        process that keeps writing gets ``patience`` seconds; the rest goes to the next cell)."""
        size = bytearray(4)
        deadline = None
        with self.cond:
            while True:
                fcntl.ioctl(self.fd, termios.FIONREAD, size)
                if int.from_bytes(size, sys.byteorder) == 0:
                    break
                now = time.monotonic()
                deadline = deadline or now + patience
                if now >= deadline:
                    break
                self.cond.wait(0.05)
            data, dropped = bytes(self.buf), self.dropped
            self.buf, self.dropped = bytearray(), 0
        return data.decode("utf-8", "replace"), dropped > 0


def _cell_traceback(exc, filename):
    """The traceback without the worker's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_cell(code, namespace, index):
    """Execute one cell; echo the value of a trailing expression like a REPL. Returns (status, exit_code)."""
    filename = f"<cell-{index}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
            if value is not None:
                print(repr(value))
        return "ok", 0
    except SystemExit as exc:
        code_ = exc.code
        if code_ is None or code_ == 0:
            return "ok", 0
        if not isinstance(code_, int):
            print(code_, file=sys.stderr)
            code_ = 1
        return "error", code_
    except SyntaxError as exc:
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        return "error", 1
    except MemoryError as exc:
        sys.stderr.write(_cell_traceback(exc, filename))
        return "oom", 1
    except BaseException as exc:  # the cell's error is the model's observation, never the worker's end
        sys.stderr.write(_cell_traceback(exc, filename))
        return "error", 1


def _open_streams():
    """Text streams over fds 1 and 2 (stdout block-buffered like a pipe, stderr unbuffered)."""
    stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    return stdout, stderr


def _restore_streams(out_fd, err_fd, streams):
    """Undo what a cell did to its output: fds 1/2 back on the capture pipes, fresh text streams."""
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    if streams[0].closed or streams[1].closed:
        streams = _open_streams()
    sys.stdout, sys.stderr = streams
    return streams


def main(argv):
    cap = 65536
    preload = []
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--cap":
            cap = int(args.pop(0))
        elif flag == "--preload":
            preload = [m for m in args.pop(0).split(",") if m]

    proto_in = open(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.dup(1)

    def reply(obj):
        data = (json.dumps(obj) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(proto_out, view) :]

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    out_fd, err_fd = os.dup(out_w), os.dup(err_w)  # spare copies, to repair fds a cell closed
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    drains = Drain(out_r, cap), Drain(err_r, cap)
    for drain in drains:
        drain.start()
    streams = _open_streams()
    sys.stdout, sys.stderr = streams
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))

    loaded, failed = [], {}
    for name in preload:
        try:
            __import__(name)
            loaded.append(name)
        except Exception as exc:  # a missing optional module is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
    for drain in drains:
        drain.collect()  # drop import-time noise
    gc.collect()
    gc.freeze()  # the preloaded modules' objects never need scanning again: cells stay sub-millisecond

    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main_module
    namespace = main_module.__dict__
    if sys.path and sys.path[0] != "":
        sys.path.insert(0, "")
    sys.argv = [""]
    os.umask(0o002)
    reply(
        {
            "ready": True,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "preloaded": loaded,
            "preload_failed": failed,
        }
    )

    index = 0
    while True:
        line = proto_in.readline()
        if not line:
            return 0
        request = json.loads(line)
        index += 1
        cpu = request.get("cpu")
        if cpu:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            soft = int(usage.ru_utime + usage.ru_stime) + int(cpu) + 1
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        status, exit_code = run_cell(request["code"], namespace, index)
        for stream in (sys.stdout, sys.stderr, *streams):
            try:
                stream.flush()
            except Exception:  # a cell may have closed or replaced its streams
                pass
        streams = _restore_streams(out_fd, err_fd, streams)
        out, out_cut = drains[0].collect()
        err, err_cut = drains[1].collect()
        reply(
            {
                "id": request.get("id"),
                "status": status,
                "exit_code": exit_code,
                "stdout": out,
                "stderr": err,
                "stdout_truncated": out_cut,
                "stderr_truncated": err_cut,
            }
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
