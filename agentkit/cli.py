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
    "serve": Command("serve", "agentkit.server.cli:serve", "agentkit.server.cli:register",
                     "serve a model over the OpenAI API (embedded transformers engine, or vllm serve)"),
    "synth": Command("synth", "agentkit.synth.cli:synth", "agentkit.synth.config:register",
                     "synthesize a verified, curated trajectory dataset"),
    "eval": Command("eval", "agentkit.synth.cli:evaluate", "agentkit.synth.config:register",
                    "evaluate an agent (model or reference policy): pass@k with confidence intervals"),
    "train": Command("train", "agentkit.train.cli:train", "agentkit.train.config:register",
                     "run a training stage (tokenizer, pretrain, midtrain, sft) on TRL",
                     rewrite="agentkit.train.cli:rewrite_args"),
    "demo": Command("demo", "agentkit.synth.demo:demo", "agentkit.synth.demo:register",
                    "train a tiny MLA agent from scratch and show mid-training lift its pass rate"),
    "sandbox exec": Command("sandbox_exec", "agentkit.envs.sandbox.cli:exec_code", "agentkit.envs.sandbox.cli:register",
                            "run Python code from stdin in a fresh sandbox; print the ExecResult as JSON"),
    "sandbox check": Command("sandbox_check", "agentkit.envs.sandbox.cli:check", "agentkit.envs.sandbox.cli:register",
                             "run the sandbox conformance suite against a live backend"),
    "index": Command("index", "agentkit.envs.research.cli:build_index", "agentkit.envs.research.cli:register",
                     "build a BM25 index over a document corpus"),
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
    lines += ["", "Examples:",
              "  agentkit serve engine=transformers model=tiny-mla port=8000",
              "  agentkit synth env=math model.base_url=http://gpu:8000/v1 strategy=reflect n_samples=4 out=runs/math",
              "  agentkit train stage=midtrain model=tiny-mla data=runs/math out=runs/ckpt",
              "  agentkit eval env=code policy=reference",
              "  echo 'print(1+1)' | agentkit sandbox exec backend=bwrap"]
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
    command = COMMANDS[name]
    _resolve(command.schema)()
    target = _resolve(command.target)

    import hydra

    from agentkit.config import to_object

    @hydra.main(config_path=str(conf_dir()), config_name=command.config, version_base="1.3")
    def run(cfg) -> None:
        result = target(to_object(cfg))
        if isinstance(result, int) and result:
            raise SystemExit(result)

    if command.rewrite:
        rest = _resolve(command.rewrite)(rest)
    sys.argv = [f"agentkit {name}", *_rewrite_model_path(rest)]
    run()


if __name__ == "__main__":
    main()
