"""``agentkit <command> [hydra overrides]``.

Each command is one primary config under ``conf/`` on a structured schema, and one function that
receives the typed config. ``--help``, ``--cfg job`` and ``--multirun`` are Hydra's.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from agentkit.errors import AgentkitError, ConfigError


@dataclass(frozen=True)
class Command:
    config: str
    target: str
    """``module:function`` taking the typed config."""
    schema: str
    """``module:function`` that registers the structured schema in Hydra's ConfigStore."""
    help: str
    rewrite: str | None = None
    """Optional ``module:function`` rewriting the command's shorthand arguments before Hydra parses them."""


COMMANDS: dict[str, Command] = {
    "serve": Command(
        "serve",
        "agentkit.server.cli:serve",
        "agentkit.server.cli:register",
        "serve a model over the OpenAI API (embedded transformers engine, or vllm serve)",
    ),
    "synth": Command(
        "synth",
        "agentkit.synth.cli:synth",
        "agentkit.synth.config:register",
        "synthesize a verified, curated trajectory dataset",
    ),
    "eval": Command(
        "eval",
        "agentkit.synth.cli:evaluate",
        "agentkit.synth.config:register",
        "evaluate an agent (model or reference policy): pass@k with confidence intervals",
    ),
    "train": Command(
        "train",
        "agentkit.train.cli:train",
        "agentkit.train.config:register",
        "run a training stage (tokenizer, pretrain, midtrain, sft) on TRL, or a recipe=<name> of stages",
        rewrite="agentkit.train.config:rewrite_args",
    ),
    "curate": Command(
        "curate",
        "agentkit.synth.merge:curate_runs",
        "agentkit.synth.merge:register",
        "dedup, decontaminate and cap per task across the datasets of many runs or shards",
        rewrite="agentkit.synth.merge:rewrite_args",
    ),
    "demo": Command(
        "demo",
        "agentkit.synth.demo:demo",
        "agentkit.synth.demo:register",
        "train a tiny MLA agent from scratch and show mid-training lift its pass rate",
    ),
    "sandbox exec": Command(
        "sandbox_exec",
        "agentkit.envs.sandbox.cli:exec_code",
        "agentkit.envs.sandbox.cli:register",
        "run Python code from stdin in a fresh sandbox; print the ExecResult as JSON",
    ),
    "sandbox check": Command(
        "sandbox_check",
        "agentkit.envs.sandbox.cli:check",
        "agentkit.envs.sandbox.cli:register",
        "run the sandbox conformance suite against a live backend",
    ),
    "index": Command(
        "index",
        "agentkit.envs.research.cli:build_index",
        "agentkit.envs.research.cli:register",
        "build a BM25 index over a document corpus",
    ),
    "export": Command(
        "export",
        "agentkit.synth.export:export",
        "agentkit.synth.export:register",
        "write a run's trajectories as ATIF, ShareGPT/LlamaFactory, Parquet or a datasets dir",
    ),
    "view": Command(
        "view",
        "agentkit.synth.view:view",
        "agentkit.synth.view:register",
        "browse a run's trajectories, plots and a side-by-side comparison in the browser",
        rewrite="agentkit.synth.view:rewrite_args",
    ),
}


def conf_dir() -> Path:
    """``conf/`` in a checkout, or the copy installed inside the package."""
    override = os.environ.get("AGENTKIT_CONF")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "serve.yaml").exists():
            return candidate
    raise SystemExit("agentkit: cannot find the conf/ directory (set AGENTKIT_CONF)")


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: agentkit <command> [key=value ...] [--help] [--cfg job] [--multirun]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += [
        "",
        "Examples:",
        "  agentkit serve engine=transformers model=tiny-mla port=8000",
        "  agentkit synth env=math model.base_url=http://gpu:8000/v1 strategy=reflect n_samples=4 out=runs/math",
        "  agentkit train stage=midtrain model=tiny-mla data=runs/math out=runs/ckpt",
        "  agentkit train recipe=tiny out=runs/recipe",
        "  agentkit eval env=code policy=reference",
        "  echo 'print(1+1)' | agentkit sandbox exec backend=bwrap",
    ]
    return "\n".join(lines)


def _split(argv: list[str]) -> tuple[str | None, list[str]]:
    if not argv:
        return None, []
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    return (argv[0], argv[1:]) if argv[0] in COMMANDS else (None, argv)


def _rewrite_model_path(args: list[str]) -> list[str]:
    """``model=/path/to/ckpt`` (a directory, not a config name) means ``model=hf model.path=...``."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key == "model" and ("/" in value or value.startswith(".")) and Path(value).exists():
            out += ["model=hf", f"model.path={Path(value).resolve()}", f"model.name={Path(value).name}"]
        else:
            out.append(arg)
    return out


# Hydra flags whose next argument is their value, not a positional path.
_FLAGS_WITH_VALUES = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "-i",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def bare_paths_to_list(args: list[str], key: str) -> list[str]:
    """``agentkit view runs/a runs/b port=1``: the bare paths become one override ``key=["runs/a","runs/b"]``."""
    import json

    paths, rest = [], []
    for number, arg in enumerate(args):
        after_flag = number > 0 and args[number - 1] in _FLAGS_WITH_VALUES
        (rest if "=" in arg or arg.startswith("-") or after_flag else paths).append(arg)
    if paths:
        rest.append(f"{key}=[" + ",".join(json.dumps(p) for p in paths) + "]")
    return rest


def _full_error() -> bool:
    """``HYDRA_FULL_ERROR=1`` shows the whole stack instead of the one-line report."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def _one_line(text: str) -> str:
    """A multi-line message (Hydra's, OmegaConf's) as one line: lines join with ``; ``, and the items listed
    under a line ending in ``:`` join that line with commas."""
    pieces: list[str] = []
    listing = False
    for line in (part.strip() for part in str(text).split("Config search path:")[0].splitlines()):
        if not line:
            continue
        if listing and not line.endswith(":"):
            pieces[-1] += (" " if pieces[-1].endswith(":") else ", ") + line
            continue
        pieces.append(line)
        listing = line.endswith(":")
    return "; ".join(pieces).rstrip(".")


def config_error(exc: BaseException) -> ConfigError:
    """A Hydra or OmegaConf composition error as a ConfigError naming the key (and the nearest valid one)."""
    import difflib
    import re
    from dataclasses import fields, is_dataclass

    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if not isinstance(cause, OmegaConfBaseException):
        return ConfigError(_one_line(str(exc)))
    message = str(cause).splitlines()[0].strip() if str(cause).strip() else type(cause).__name__
    key = getattr(cause, "full_key", None) or ""
    hint = ""
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in" in message:
        owner, child = getattr(cause, "object_type", None), getattr(cause, "key", None)
        if owner is not None and is_dataclass(owner) and child is not None:
            valid = [f.name for f in fields(owner)]
            nearest = difflib.get_close_matches(str(child), valid, n=1)
            hint = f"; did you mean '{nearest[0]}'?" if nearest else f"; valid keys: {', '.join(valid)}"
        append = re.search(r"To append to your config use (\S+)", str(exc))
        if append and not hint:  # a free-form mapping (env.options...): a new key takes a leading '+'
            hint = f"; to add a key to this mapping, write {append.group(1)}"
    return ConfigError(f"{key}: {message}{hint}" if key else f"{message}{hint}")


def _check_compose(command: Command, overrides: list[str]) -> None:
    """Compose the config once up front, so a bad key or value is one ConfigError line, not Hydra's report.

    Skipped for Hydra's own flags (``--help``, ``--multirun`` sweeps): Hydra reports those itself.
    """
    flags = [arg for arg in overrides if arg.startswith("-")]
    if flags and any(flag not in ("--cfg", "-c", "--resolve") for flag in flags):
        return
    overrides = [
        arg
        for i, arg in enumerate(overrides)
        if not arg.startswith("-") and not (i and overrides[i - 1] in ("--cfg", "-c"))
    ]
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            compose(config_name=command.config, overrides=overrides, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as exc:
            raise config_error(exc) from exc


def _report(name: str, exc: AgentkitError) -> NoReturn:
    """The one error boundary: an AgentkitError is one line on stderr and exit code 2."""
    print(f"agentkit {name}: error: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, rest = _split(argv)
    if name is None:
        if argv and argv[0] not in ("-h", "--help", "help"):
            print(f"agentkit: unknown command '{argv[0]}'\n", file=sys.stderr)
            print(_usage(), file=sys.stderr)
            raise SystemExit(2)
        print(_usage())
        return
    try:
        _main(name, rest)
    except AgentkitError as exc:
        if _full_error():
            raise
        _report(name, exc)


def _main(name: str, rest: list[str]) -> None:
    command = COMMANDS[name]
    _resolve(command.schema)()
    target = _resolve(command.target)

    import hydra
    from omegaconf.errors import OmegaConfBaseException

    from agentkit.config import to_object

    @hydra.main(config_path=str(conf_dir()), config_name=command.config, version_base="1.3")
    def run(cfg) -> None:
        # Hydra reports any exception escaping here as a stack trace; AgentkitError leaves as exit 2.
        try:
            try:
                typed = to_object(cfg)
            except OmegaConfBaseException as exc:
                raise config_error(exc) from exc
            result = target(typed)
        except AgentkitError as exc:
            if _full_error():
                raise
            _report(name, exc)
        if isinstance(result, int) and result:
            raise SystemExit(result)

    if command.rewrite:
        rest = _resolve(command.rewrite)(rest)
    rest = _rewrite_model_path(rest)
    if not _full_error():
        _check_compose(command, rest)
    sys.argv = [f"agentkit {name}", *rest]
    run()


if __name__ == "__main__":
    main()
