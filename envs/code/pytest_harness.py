"""Runs a project's pytest suite INSIDE a sandbox and reports every test's outcome (stdlib + pytest).

Usage: see ``main``. Each run happens in a forked child (pytest is imported once, before any fork) and
reports one line on the original stdout, ``<nonce> report <run id> <json>``, written at the end of the
session by a plugin created before any project code is imported.

Threat model (repository tasks run the candidate's code in this very process, so this is weaker than
the function-level harness, and the host adds a static check of the patch): an early exit
(``sys.exit``/``os._exit`` at import or in a test) leaves no report, or reports tests as failed or
missing; printed text is ignored, since only the nonce-tagged line counts and the nonce is read from
stdin before project code runs; tests and pytest configuration come from a pristine copy; replacing
pytest's runner functions, the report class, or builtins is detected by comparing them with what was
loaded before the project code, and marks the run as tampered. Code that reads the nonce back out of
this process's memory is out of scope here: the host rejects patches that reach for the interpreter's
internals (see ``agentkit.envs.code.repo.suspicious_constructs``).
"""

import builtins
import json
import os
import sys

WATCHED = (
    "_pytest.runner:call_and_report",
    "_pytest.runner:runtestprotocol",
    "_pytest.runner:pytest_runtest_protocol",
    "_pytest.runner:check_interactive_exception",
    "_pytest.runner:pytest_runtest_call",
    "_pytest.runner:pytest_runtest_makereport",
    "_pytest.runner:CallInfo.from_call",
    "_pytest.reports:TestReport.from_item_and_call",
    "_pytest.reports:TestReport.__init__",
    "_pytest.python:pytest_pyfunc_call",
    "_pytest.python:Function.runtest",
    "_pytest.main:Session.perform_collect",
    "_pytest.terminal:TerminalReporter.pytest_runtest_logreport",
    "pluggy._hooks:HookCaller.__call__",
    "pluggy._callers:_multicall",
    "os:_exit",
    "sys:exit",
)


def _watched():
    """Objects a patch could replace to fake outcomes, by name (those this pytest version has)."""
    import importlib

    objects = {}
    for spec in WATCHED:
        module_name, _, path = spec.partition(":")
        try:
            value = importlib.import_module(module_name)
            for part in path.split("."):
                value = inspect_attr(value, part)
        except (ImportError, AttributeError):
            continue
        objects[spec] = value
    for name, value in vars(builtins).items():
        objects["builtins:" + name] = value
    return objects


def inspect_attr(owner, name):
    """``owner.name`` without running descriptors (a classmethod stays the same object)."""
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in vars(klass):
                return vars(klass)[name]
        raise AttributeError(name)
    return getattr(owner, name)


class ReportPlugin:
    def __init__(self, nonce, out, run_id):
        self.nonce, self.out, self.run_id = nonce, out, run_id
        self.outcomes = {}
        self.errors = []
        self.collect_errors = []
        self.baseline = _watched()

    def pytest_runtest_logreport(self, report):
        previous = self.outcomes.get(report.nodeid, "passed")
        if report.failed:
            outcome = "failed" if report.when == "call" else "error"
            if len(self.errors) < 20:
                text = str(report.longreprtext)[-1500:]
                self.errors.append({"test": report.nodeid, "when": report.when, "message": text})
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        if previous == "passed" or outcome in ("failed", "error"):
            self.outcomes[report.nodeid] = outcome

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append({"node": report.nodeid, "message": str(report.longreprtext)[-1500:]})

    def pytest_sessionfinish(self, session, exitstatus):
        now = _watched()
        tampered = sorted(name for name, value in self.baseline.items() if now.get(name) is not value)
        report = {
            "outcomes": self.outcomes,
            "errors": self.errors,
            "collect_errors": self.collect_errors,
            "tampered": tampered,
            "exitstatus": int(exitstatus),
        }
        self.out.write(f"{self.nonce} report {self.run_id} {json.dumps(report)}\n")
        self.out.flush()


def run_variant(variant, args, nonce, out, timeout):
    """Run the suite once in a forked child with ``variant["files"]`` written over the project."""
    import signal
    import time

    originals = {}
    for rel in variant.get("files", {}):
        try:
            with open(rel, encoding="utf-8") as handle:
                originals[rel] = handle.read()
        except FileNotFoundError:
            originals[rel] = None
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            for rel, text in variant.get("files", {}).items():
                with open(rel, "w", encoding="utf-8") as handle:
                    handle.write(text)
            import pytest

            plugin = ReportPlugin(nonce, out, variant["id"])
            code = int(pytest.main(args, plugins=[plugin]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
        elif time.monotonic() > deadline:
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass
            os.waitpid(pid, 0)
            status = "timeout"
        else:
            time.sleep(0.02)
    for rel, text in originals.items():
        if text is None:
            try:
                os.unlink(rel)
            except FileNotFoundError:
                pass
        else:
            with open(rel, "w", encoding="utf-8") as handle:
                handle.write(text)
    out.write(f"{nonce} finished {variant['id']} {json.dumps(status)}\n")
    out.flush()


def main():
    """Usage: ``<project dir> <per-test timeout> <per-run timeout> [<JSON list of extra pytest args>
    [<report file>]]``; stdin: the nonce, then a JSON list
    of variants ``{"id", "files": {path: text}}`` (files written over the project for that run only)."""
    import importlib.util

    project, test_timeout, run_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    nonce = sys.stdin.readline().strip()
    variants = json.loads(sys.stdin.read() or "[]") or [{"id": "run", "files": {}}]
    sys.stdin.close()
    # Reports go to a file when one is named (a large suite's report outgrows the sandbox's output cap).
    out = (
        open(sys.argv[5], "a", encoding="utf-8")
        if len(sys.argv) > 5 and sys.argv[5]
        else os.fdopen(os.dup(1), "w", encoding="utf-8")
    )
    os.dup2(2, 1)  # pytest's own output (and the project's prints) go to stderr
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.dont_write_bytecode = True
    os.chdir(project)
    sys.path.insert(0, os.getcwd())
    if os.path.isdir("src"):  # a src layout: the package imports from src/, as an installed project would
        sys.path.insert(0, os.path.join(os.getcwd(), "src"))
    import pytest  # noqa: F401 - imported once here, before any fork, so every run starts warm

    args = [
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--rootdir",
        ".",
        "--tb=short",
        "-W",
        "ignore::DeprecationWarning",
    ]
    if importlib.util.find_spec("pytest_timeout") is not None:
        args += ["-p", "pytest_timeout", f"--timeout={test_timeout}"]
    args += json.loads(sys.argv[4]) if len(sys.argv) > 4 else []  # the user's test selection (paths, -k, -m)
    _watched()
    out.write(f"{nonce} started\n")
    out.flush()
    for variant in variants:
        run_variant(variant, args, nonce, out, run_timeout)


if __name__ == "__main__":
    main()
