"""How the demo runs its steps: each one an ``agentkit ...`` command line, printed as a user would type it,
run as a subprocess, and reused on a rerun when it and every step before it are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import AgentkitError, ConfigError


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra override value (quoted where the grammar needs it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if "${" in text:
        raise ConfigError(f"'{text[:40]}...': '${{' would be read as an interpolation")
    if re.fullmatch(r"[A-Za-z_/.][\w./-]*", text) and text.lower() not in (
        "true",
        "false",
        "null",
        "nan",
        "inf",
    ):
        return text
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def overrides(prefix: str, values: dict[str, Any]) -> list[str]:
    """``++prefix.key=value`` for each entry (added or replaced, whatever the group's YAML has)."""
    return [f"++{prefix}.{key}={hydra_value(value)}" for key, value in values.items()]


def _shell_word(arg: str) -> str:
    """``arg`` quoted for a POSIX shell, in double quotes when that reads better than shlex's choice."""
    quoted = shlex.quote(arg)
    if quoted == arg or "'" not in arg or re.search(r'["$`!]|\\\\|\\$', arg):
        return quoted
    return f'"{arg}"'


def shown(args: list[str]) -> str:
    """The command line a user would type (the demo runs the same arguments with this interpreter)."""
    return " ".join(_shell_word(a) for a in ["agentkit", *args])


# ----------------------------------------------------------------------------------------------- steps


@dataclass
class StepRecord:
    name: str
    command: str
    seconds: float
    reused: bool
    load: tuple[float, float, float] | None = None
    """1-minute load average before and after, and the number of CPUs (the machine may be shared)."""


class Runner:
    """Runs steps in order; a step whose key (its command chained to every earlier step's) matches the
    last successful run is reused."""

    STATE = "demo_state.json"

    def __init__(self, out: Path, resume: bool, total: int):
        from rich.console import Console

        self.out = out
        self.resume = resume
        self.total = total
        self.console = Console()
        self.chain = hashlib.sha256(b"agentkit-demo/1")
        self.records: list[StepRecord] = []
        path = out / self.STATE
        self.state: dict[str, Any] = json.loads(path.read_text()) if resume and path.exists() else {}

    def _save(self) -> None:
        (self.out / self.STATE).write_text(json.dumps(self.state, indent=1))

    def step(
        self, name: str, title: str, command: str, action: Callable[[], object], marker: Path | None = None
    ) -> bool:
        """Run ``action`` unless it can be reused; returns True if it ran."""
        self.chain.update(command.encode("utf-8"))
        key = self.chain.hexdigest()
        number = len(self.records) + 1
        self.console.rule(f"[bold]{number}/{self.total} {title}")
        self.console.print(command, style="cyan", markup=False, highlight=False, soft_wrap=True)
        previous = self.state.get(name)
        if (
            self.resume
            and previous
            and previous.get("key") == key
            and previous.get("ok")
            and (marker is None or marker.exists())
        ):
            self.console.print(
                f"[dim]reused from the last run ({previous.get('seconds', 0):.1f} s then)[/dim]"
            )
            self.records.append(
                StepRecord(name, command, previous.get("seconds", 0.0), True, previous.get("load"))
            )
            return False
        self.state[name] = {"key": key, "ok": False}
        self._save()
        before = os.getloadavg()[0]
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
        load = (round(before, 2), round(os.getloadavg()[0], 2), float(os.cpu_count() or 0))
        self.state[name] = {"key": key, "ok": True, "seconds": round(seconds, 2), "load": load}
        self._save()
        self.records.append(StepRecord(name, command, seconds, False, load))
        self.console.print(
            f"[green]done[/green] in {seconds:.1f} s (load {load[0]:.1f} -> {load[1]:.1f} on "
            f"{load[2]:.0f} CPUs)"
        )
        return True


def run_agentkit(args: list[str]) -> None:
    """``agentkit <args>`` as a subprocess with this interpreter; its output goes straight to the terminal."""
    proc = subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args], stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode:
        raise DemoStepError(f"`{shown(args)}` exited with code {proc.returncode}")


class DemoStepError(AgentkitError):
    """A step of the demo failed (its own output says why)."""
