"""The test harness that runs INSIDE a sandbox (stdlib only): a trusted runner and an untrusted worker.

Threat model. The candidate solution runs only in the worker, a separate process in its own session
that the runner spawns with private pipes. The runner executes the hidden tests; the candidate
function is a proxy that crosses the process boundary as plain data (ints, strings, lists, dicts...),
so a solution cannot patch the tests, the builtins the tests use, or the runner, and cannot return
objects whose ``__eq__`` lies. The runner makes itself non-dumpable before any candidate code runs,
so the worker cannot read its memory or file descriptors through /proc or ptrace. The runner reads a
random nonce from its stdin and prints the verdict, tagged with it, as the last line of its stdout,
which no candidate process holds: exiting early, printing fake results or killing the runner yields
a missing or failed verdict, never a pass. Stdin/stdout programs run as separate processes too, and
their output is compared by the runner.

What crosses the boundary: arguments and return values that are plain data (iterators are drained
into lists); other objects stay in the worker as opaque handles that tests can only pass back. A
class the solution defines reaches the tests as a constructor of such handles, so tests that call
methods on the solution's objects, or rely on arguments being mutated in place, are not supported.

Usage: ``python3 -I -c <this source> runner`` with the spec on stdin (see ``runner_main``); the runner
starts workers as ``python3 -I -S -c <this source> worker``.
"""

import builtins
import collections.abc
import json
import os
import sys
import traceback

# The runner's own imports are made inside its functions: a worker, started once per problem, then
# imports only what it needs and starts in a few tens of milliseconds.

MAX_LINE = 64 * 1024 * 1024
MAX_ITEMS = 1_000_000
MESSAGE_CHARS = 600
MAX_FAILURES = 5


# ---------------------------------------------------------------- codec: plain data only


def encode(value, handles=None, depth=0):
    """A JSON-able form of ``value``. Containers and non-JSON scalars are tagged one-key objects."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int or kind is float:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    nested = depth + 1
    if isinstance(value, complex):
        return {"c": [value.real, value.imag]}
    if isinstance(value, (bytes, bytearray)):
        return {"b": bytes(value).hex()}
    if isinstance(value, list):
        return {"l": [encode(v, handles, nested) for v in value]}
    if isinstance(value, tuple):
        return {"t": [encode(v, handles, nested) for v in value]}
    if isinstance(value, dict):
        return {"d": [[encode(k, handles, nested), encode(v, handles, nested)] for k, v in value.items()]}
    if isinstance(value, frozenset):
        return {"f": [encode(v, handles, nested) for v in value]}
    if isinstance(value, set):
        return {"s": [encode(v, handles, nested) for v in value]}
    if isinstance(value, range):
        return {"r": [value.start, value.stop, value.step]}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return encode(value.tolist(), handles, depth)
    if handles is not None and isinstance(value, collections.abc.Iterator):
        items = []
        for item in value:
            items.append(encode(item, handles, nested))
            if len(items) > MAX_ITEMS:
                raise ValueError("iterator yields too many items")
        return {"it": items}
    if handles is None:
        raise TypeError(f"a value of type {type(value).__name__} cannot be passed to the solution")
    if isinstance(value, Handle):
        return {"h": value.ref, "type": value.type_name}
    ref = len(handles) + 1
    handles[ref] = value
    return {"h": ref, "type": type(value).__name__}


class Handle:
    """An object that stayed in the worker: it can be passed back to the solution, nothing else."""

    __slots__ = ("ref", "type_name")

    def __init__(self, ref, type_name):
        self.ref, self.type_name = ref, type_name

    def __repr__(self):
        return f"<{self.type_name} object of the solution>"


def decode(data, resolve=None, depth=0):
    """Rebuild exact builtin values from ``encode`` output; handles go through ``resolve``."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is list:
        raise ValueError("untagged list in encoded value")
    if kind is not dict or not data:
        raise ValueError(f"bad encoded value of type {kind.__name__}")
    tag = next(iter(data))
    body = data[tag]
    nested = depth + 1
    if tag == "l":
        return [decode(v, resolve, nested) for v in _seq(body)]
    if tag == "t":
        return tuple(decode(v, resolve, nested) for v in _seq(body))
    if tag == "d":
        out = {}
        for pair in _seq(body):
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("bad dict item")
            out[decode(pair[0], resolve, nested)] = decode(pair[1], resolve, nested)
        return out
    if tag == "s":
        return {decode(v, resolve, nested) for v in _seq(body)}
    if tag == "f":
        return frozenset(decode(v, resolve, nested) for v in _seq(body))
    if tag == "it":
        return iter([decode(v, resolve, nested) for v in _seq(body)])
    if tag == "c":
        real, imag = _seq(body)
        return complex(float(real), float(imag))
    if tag == "b":
        return bytes.fromhex(str(body))
    if tag == "r":
        start, stop, step = (int(x) for x in _seq(body))
        return range(start, stop, step)
    if tag == "h":
        if resolve is None:
            raise ValueError("unexpected handle")
        return resolve(int(body), str(data.get("type", "object")))
    raise ValueError(f"unknown tag {tag!r}")


def _seq(body):
    if type(body) is not list:
        raise ValueError("bad encoded container")
    return body


def _short(text, limit=MESSAGE_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 20] + " ...[truncated]"


# ---------------------------------------------------------------- worker (untrusted side)


def worker_main():
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8", errors="replace")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # what the solution prints goes to the runner's log of it, not into the protocol
    sys.stdin = open(os.devnull, encoding="utf-8")
    handles = {}

    def send(message):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # the solution may have replaced or closed them
                pass
        proto_out.write(json.dumps(message) + "\n")
        proto_out.flush()

    def resolve(ref, _type_name):
        return handles[ref]

    def describe(exc):
        return [type(exc).__name__, _short(exc)]

    load = json.loads(proto_in.readline())
    sys.path[:] = [p for p in load.get("path", []) if isinstance(p, str)] or sys.path
    namespace: dict = {"__name__": "solution", "__file__": "solution.py"}
    try:
        exec(compile(load["code"], "solution.py", "exec"), namespace)
    except BaseException as exc:  # SystemExit too: a solution that exits while loading fails
        send({"error": describe(exc), "trace": _short(traceback.format_exc(limit=-3), 2000)})
        return
    names = {}
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        if type(value).__name__ == "module":
            names[name] = "module:" + str(getattr(value, "__name__", name))
        elif callable(value):
            names[name] = "callable"
    send({"names": names})
    while True:
        line = proto_in.readline()
        if not line:
            return
        request = json.loads(line)
        try:
            target = namespace[request["name"]]
            args = decode(request["args"], resolve)
            kwargs = decode(request["kwargs"], resolve)
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("a call's arguments must be a list and a dict")
            result = target(*args, **kwargs)
            reply = {"ok": encode(result, handles)}
        except BaseException as exc:
            reply = {"exc": describe(exc), "trace": _short(traceback.format_exc(limit=-2), 1500)}
        send(reply)


# ---------------------------------------------------------------- runner (trusted side)


class SolutionFailed(Exception):
    """The solution process crashed, exited, hung or sent something that is not plain data."""


class Worker:
    """The runner's end of one worker process."""

    def __init__(self, source):
        import subprocess
        import tempfile

        self.deadline = float("inf")
        self.log = tempfile.TemporaryFile()  # unlinked: no path to tamper with
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", source, "worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            close_fds=True,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.buffer = b""
        self.dead = None

    def request(self, message):
        if self.dead:
            raise SolutionFailed(self.dead)
        try:
            self.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reply read below reports how the worker ended
        return self.reply()

    def reply(self):
        import select
        import time

        fd = self.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.dead = "the solution timed out"
                self.kill()
                raise SolutionFailed(self.dead)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                try:
                    how = f"exited (exit code {self.proc.wait(timeout=2)})"
                except Exception:  # it closed the pipe but lives on
                    self.kill()
                    how = "closed its output"
                self.dead = f"the solution process {how}"
                raise SolutionFailed(self.dead)
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                self.dead = "the solution sent an oversized value"
                self.kill()
                raise SolutionFailed(self.dead)
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            self.dead = "the solution broke the worker protocol"
            self.kill()
            raise SolutionFailed(self.dead) from None
        if type(message) is not dict:
            self.dead = "the solution broke the worker protocol"
            raise SolutionFailed(self.dead)
        return message

    def output_tail(self, limit=1500):
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - limit))
            return self.log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self):
        import contextlib
        import signal

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


_BUILTIN_EXCEPTIONS = {
    name: obj for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, Exception)
}


def _rebuild_exception(info):
    """A builtin exception of the solution's type (so ``except ValueError`` tests work), else a failure."""
    if type(info) is not list or len(info) != 2:
        return SolutionFailed("the solution broke the worker protocol")
    name, message = str(info[0]), _short(info[1])
    cls = _BUILTIN_EXCEPTIONS.get(name)
    if cls is not None and cls is not SolutionFailed:
        try:
            return cls(message)
        except Exception:
            pass
    return SolutionFailed(f"{name}: {message}")


class RemoteFunction:
    """Calls a function of the solution in the worker, with plain-data arguments and results."""

    def __init__(self, worker, name):
        self._worker, self._name = worker, name
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        message = {
            "name": self._name,
            "args": {"l": [_encode_arg(v) for v in args]},
            "kwargs": {"d": [[key, _encode_arg(value)] for key, value in kwargs.items()]},
        }
        return _unwrap(self._worker, self._worker.request(message))

    def __repr__(self):
        return f"<solution function {self._name}>"


def _encode_arg(value):
    """Encode a trusted argument; handles the solution returned earlier go back to it."""
    if isinstance(value, Handle):
        return {"h": value.ref, "type": value.type_name}
    tags = {list: "l", tuple: "t", set: "s", frozenset: "f"}
    if type(value) in tags:
        return {tags[type(value)]: [_encode_arg(v) for v in value]}
    if type(value) is dict:
        return {"d": [[_encode_arg(k), _encode_arg(v)] for k, v in value.items()]}
    return encode(value, None)


def _unwrap(worker, reply):
    if "ok" in reply:
        try:
            return decode(reply["ok"], Handle)
        except (ValueError, TypeError, RecursionError) as exc:
            worker.dead = f"the solution returned something that is not plain data ({exc})"
            worker.kill()
            raise SolutionFailed(worker.dead) from None
    if "exc" in reply:
        raise _rebuild_exception(reply["exc"])
    raise SolutionFailed("the solution broke the worker protocol")


def _check_eq(left, right, source, message):
    if not left == right:
        detail = f"{_short(repr(left), 300)} != {_short(repr(right), 300)}"
        raise AssertionError(f"{message}: {detail}" if message is not None else detail)


def _compile_unit(source, filename):
    """Compile a test unit with ``assert a == b`` turned into ``_ak_check_eq(a, b, ...)``, which
    compares the same way but shows both values when they differ."""
    import ast

    class AssertRewriter(ast.NodeTransformer):
        def visit_Assert(self, node):
            test = node.test
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                call = ast.Call(
                    func=ast.Name("_ak_check_eq", ast.Load()),
                    args=[
                        test.left,
                        test.comparators[0],
                        ast.Constant(None),
                        node.msg if node.msg is not None else ast.Constant(None),
                    ],
                    keywords=[],
                )
                return ast.copy_location(ast.Expr(call), node)
            return node

    tree = ast.parse(source, filename)
    tree = ast.fix_missing_locations(AssertRewriter().visit(tree))
    return compile(tree, filename, "exec")


def _failure(exc, source, filename):
    """A one-line account of why a test unit failed, naming the failing line of the test."""
    line_text = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename and frame.lineno:
            lines = source.splitlines()
            if 0 < frame.lineno <= len(lines):
                line_text = lines[frame.lineno - 1].strip()
            break
    kind = type(exc).__name__
    text = str(exc)
    summary = f"{kind}: {text}" if text else kind
    return _short(f"{line_text}  ->  {summary}" if line_text else summary)


def _bind_solution(namespace, worker, names, entry_point):
    import contextlib

    for name, kind in names.items():
        if type(name) is not str or not name.isidentifier() or name.startswith("__"):
            continue
        if name == entry_point:
            continue
        if name in namespace:
            continue
        if kind == "callable":
            namespace[name] = RemoteFunction(worker, name=name)
        elif type(kind) is str and kind.startswith("module:"):
            module = kind[len("module:") :]
            if all(part.isidentifier() for part in module.split(".")):
                with contextlib.suppress(Exception):
                    namespace[name] = (
                        __import__(module, fromlist=["_"]) if "." in module else __import__(module)
                    )
    if entry_point:
        namespace[entry_point] = RemoteFunction(worker, name=entry_point)


def _fail(result, index, message):
    """Record a failing unit: every index, but the message only for the first few (bounded output)."""
    result.setdefault("failed", []).append(index)
    if len(result["failures"]) < MAX_FAILURES:
        result["failures"].append({"unit": index, "message": message})


def run_function_problem(problem, worker):
    """Run the units of one function-level problem against a fresh, not yet loaded worker."""
    import contextlib
    import io
    import time

    worker.deadline = time.monotonic() + float(problem.get("timeout", 20))
    units = problem["units"]
    result = {"id": problem["id"], "units": len(units), "passed_units": 0, "failures": []}
    try:
        try:
            loaded = worker.request({"code": problem["code"], "path": sys.path})
        except SolutionFailed as exc:
            loaded = {"error": ["SolutionFailed", str(exc)]}
        if "names" not in loaded:
            error = loaded.get("error", ["Error", "the solution did not load"])
            result["error"] = _short(f"the solution failed to load: {error[0]}: {error[1]}")
            if loaded.get("trace"):
                result["trace"] = _short(loaded["trace"], 1500)
            return result
        namespace = {"__name__": "__tests__", "_ak_check_eq": _check_eq}
        setup = problem.get("setup") or ""
        if setup:
            exec(compile(setup, "<setup>", "exec"), namespace)  # trusted task data
        names = loaded["names"] if type(loaded["names"]) is dict else {}
        entry_point = problem.get("entry_point")
        if entry_point and entry_point not in names:
            result["error"] = f"the solution does not define {entry_point}()"
            return result
        _bind_solution(namespace, worker, names, entry_point)
        for index, unit in enumerate(units):
            filename = f"<test {index}>"
            captured = io.StringIO()
            try:
                code = _compile_unit(unit, filename)
                with contextlib.redirect_stdout(captured):
                    exec(code, namespace)  # trusted test code
            except Exception as exc:
                _fail(result, index, _failure(exc, unit, filename))
                if worker.dead:
                    break
            else:
                result["passed_units"] += 1
    finally:
        tail = worker.output_tail()
        worker.kill()
    if tail.strip():
        result["output"] = _short(tail, 1500)
    return result


def _normalize(text):
    return text.split()


def run_stdio_problem(problem):
    """Run a stdin/stdout program once per case; outputs are compared token by token."""
    import contextlib
    import signal
    import subprocess
    import tempfile
    import time

    result = {"id": problem["id"], "units": len(problem["cases"]), "passed_units": 0, "failures": []}
    deadline = time.monotonic() + float(problem.get("timeout", 20))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "solution.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(problem["code"])
        for index, case in enumerate(problem["cases"]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _fail(result, index, "the solution timed out")
                break
            proc = subprocess.Popen(
                [sys.executable, "-I", path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
                cwd=tmp,
            )
            try:
                out, err = proc.communicate(case["input"].encode("utf-8"), timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                _fail(result, index, "the solution timed out")
                break
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            got = out.decode("utf-8", "replace")
            if proc.returncode != 0:
                message = f"exit code {proc.returncode}: {err.decode('utf-8', 'replace')[-800:]}"
                _fail(result, index, _short(message))
            elif _normalize(got) != _normalize(case["output"]):
                shown_in = _short(case["input"], 200)
                message = (
                    f"input {shown_in!r}: expected {_short(case['output'], 200)!r}, got {_short(got, 200)!r}"
                )
                _fail(result, index, message)
            else:
                result["passed_units"] += 1
    return result


def _make_undumpable():
    """Keep candidate processes (same uid, no capabilities) out of this process via /proc and ptrace."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE, 0
    except Exception:
        return False


def runner_main():
    """Spec on stdin: ``{"nonce", "source" (this file), "problems": [...]}``; a function problem is
    ``{"id", "code", "setup", "entry_point", "units": [test code...], "timeout"}``, a stdin/stdout one
    ``{"id", "mode": "stdio", "code", "cases": [{"input", "output"}], "timeout"}``. Prints
    ``<nonce> ready`` before any solution runs, then ``<nonce> result <json list>``."""
    out = sys.stdout
    protected = _make_undumpable()
    spec = json.loads(sys.stdin.read())
    sys.stdin.close()
    nonce = str(spec["nonce"])
    source = spec["source"]
    sys.stdout = sys.stderr
    out.write(f"{nonce} ready {json.dumps({'undumpable': protected})}\n")
    out.flush()
    problems = spec["problems"]
    # One worker is started ahead, so its interpreter start overlaps the tests of the problem before.
    workers = [Worker(source) if p.get("mode") != "stdio" else None for p in problems[:1]]
    results = []
    for index, problem in enumerate(problems):
        if index + 1 < len(problems):
            workers.append(Worker(source) if problems[index + 1].get("mode") != "stdio" else None)
        worker = workers[index]
        try:
            if problem.get("mode") == "stdio":
                result = run_stdio_problem(problem)
            else:
                result = run_function_problem(problem, worker)
        except Exception as exc:  # a broken problem spec or a bug here: the host raises VerifierError
            result = {
                "id": problem.get("id"),
                "harness_error": _short(traceback.format_exc(limit=-4), 2000),
                "units": 0,
                "passed_units": 0,
                "failures": [{"unit": -1, "message": _short(exc)}],
            }
        results.append(result)
    out.write(f"{nonce} result {json.dumps(results)}\n")
    out.flush()


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "worker":
        worker_main()
    elif role == "runner":
        runner_main()
    else:
        sys.exit("usage: python3 -I -c <harness source> runner|worker")
