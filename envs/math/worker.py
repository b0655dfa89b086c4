"""The verifier worker process: ``python -m envs.math.worker [module...]`` imports the modules, then
serves ``module:function`` calls as JSON lines.

It runs on its own main thread, where math-verify's ``signal.alarm`` timeouts work; the parent
(``agentkit.envs.math.verify.HardTimeoutPool``) kills it when a call overruns the hard deadline.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any


def serve(stdin: Any, stdout: Any, preload: list[str]) -> None:
    """Worker loop: one JSON request per line, ``{"target": "module:function", "args": [...]}``."""
    for module in preload:  # warm: the first call should not pay the import
        importlib.import_module(module)
    for line in stdin:
        request = json.loads(line)
        try:
            module, _, name = request["target"].partition(":")
            reply = {"ok": True, "value": getattr(importlib.import_module(module), name)(*request["args"])}
        except BaseException as exc:  # report everything; the parent decides
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


def main() -> None:
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, protocol, [m for m in sys.argv[1:] if m])


if __name__ == "__main__":
    main()
