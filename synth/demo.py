"""``agentkit demo``: the whole of agentkit at toy scale on CPU, as the real commands it runs.

Tasks with a train / held-out split -> reference and ``teacher`` trajectories (tools in the bwrap
sandbox) -> the STEM tokenizer -> a tiny MLA model pre-trained from scratch on generated text ->
agentic mid-training on the trajectories -> a short SFT -> each checkpoint served by the embedded server
and evaluated on the held-out tasks -> the mid-trained model synthesizing new verified trajectories ->
``report.md`` / ``report.json`` / PNG plots. Every step is an ``agentkit ...`` subprocess whose command
line is printed; a rerun reuses the steps whose command and inputs have not changed.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.errors import AgentkitError, ConfigError
from agentkit.paths import atomic_open

MODELS = ("pretrain", "midtrain", "sft")
"""The checkpoints the demo trains and evaluates, in order."""


# ------------------------------------------------------------------------------------------------ config


@dataclass
class DemoEnvConfig:
    """One env of the demo: how many tasks of each split, and the options that keep episodes short."""

    train: int = 200
    """Train-split tasks, each synthesized once by the reference solver (the mid-training data)."""
    test: int = 50
    """Held-out (test-split) tasks every checkpoint is evaluated on."""
    tasks: dict[str, Any] = field(default_factory=dict)
    """Task generator options (``env.tasks.options``), e.g. ``{kinds: [arithmetic]}``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Env options (``env.options``), e.g. a compact ``system_prompt``."""
    sandbox: dict[str, Any] = field(default_factory=dict)
    """Sandbox backend options (``env.sandbox.options``)."""


@dataclass
class TeacherConfig:
    share: float = 0.3
    """Fraction of the train tasks also synthesized by ``strategy=teacher``: a real mistake, the observation
    that exposes it and the fix (0 turns it off)."""
    mistakes: list[str] = field(default_factory=lambda: ["typo", "missing_argument"])
    """Mistake kinds (``answer`` needs the verifier's feedback turn, which a plain eval never gives)."""


@dataclass
class CorpusConfig:
    """The generated pre-training text: the commonsense -> STEM curriculum plus copy and lookup drills."""

    general: int = 3000
    """Documents of ``agentkit.train.corpus.commonsense_stem``."""
    drills: int = 3000
    """Documents of copy, expression-to-code and JSON-lookup drills (``drill_corpus``)."""
    drill_weight: float = 0.5
    """Share of drills in the pre-training mixture."""


@dataclass
class StageKnobs:
    """The ``agentkit train`` settings the demo sets for one stage."""

    max_steps: int = 100
    learning_rate: float = 1e-3
    max_length: int = 512
    batch_size: int = 1
    accumulation: int = 8
    lr_scheduler: str = "wsd"
    warmup_ratio: float = 0.05
    decay_ratio: float = 0.3
    general_weight: float = 0.0
    """Mid-training only: share of general text mixed with the trajectories."""
    loss_roles: list[str] | None = None
    """Mid-training only: ``data.loss_roles`` (null: the stage's own, which trains on prompts too)."""


@dataclass
class DemoEvalConfig:
    max_tokens: int = 160
    """Per turn; greedy decoding (temperature 0)."""
    max_turns: int = 5
    max_completion_tokens: int = 480
    concurrency: int = 16
    max_batch_size: int = 16
    """The embedded server's batch: CPU generation pays per step, so batching pays."""
    confidence: float = 0.95


@dataclass
class LoopConfig:
    """Round 2: a trained checkpoint synthesizes new, verified trajectories through the server."""

    model: str = "midtrain"
    tasks: int = 24
    """Fresh train-split tasks per env (another generator seed than round 1)."""
    n_samples: int = 2
    temperature: float = 0.7
    strategy: str = "rejection"


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    resume: bool = True
    """Reuse a finished step when its command and everything before it are unchanged; false: redo all."""
    envs: dict[str, DemoEnvConfig] = field(default_factory=dict)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    vocab_size: int = 2048
    arch: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny-mla"})
    """``model.arch`` of the model pre-trained from scratch: a preset plus YoutuConfig overrides."""
    pretrain: StageKnobs = field(default_factory=StageKnobs)
    midtrain: StageKnobs = field(default_factory=StageKnobs)
    sft: StageKnobs = field(default_factory=StageKnobs)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    extra: dict[str, list[str]] = field(default_factory=dict)
    """More overrides per step kind: ``synth``, ``tokenizer``, ``pretrain``, ``midtrain``, ``sft``, ``eval``,
    ``loop``, ``serve`` (e.g. ``'demo.extra={pretrain: [trainer.logging_steps=1]}'``)."""
    plots: bool = True


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


EXTRA_KINDS = ("synth", "tokenizer", "pretrain", "midtrain", "sft", "eval", "loop", "serve")


def check_config(cfg: DemoConfig) -> None:
    """Config errors, each naming its key, before anything runs."""
    if not cfg.envs:
        raise ConfigError("envs: no env to run (e.g. envs.math.train=200)")
    for name, env in cfg.envs.items():
        if env.train < 1 or env.test < 1:
            raise ConfigError(f"envs.{name}: train and test must be >= 1 (got {env.train}, {env.test})")
    if not 0 <= cfg.teacher.share <= 1:
        raise ConfigError(f"teacher.share must be within [0, 1], got {cfg.teacher.share}")
    if not 0 <= cfg.corpus.drill_weight < 1:
        raise ConfigError(f"corpus.drill_weight must be within [0, 1), got {cfg.corpus.drill_weight}")
    if cfg.corpus.general < 1:
        raise ConfigError(f"corpus.general must be >= 1, got {cfg.corpus.general}")
    if not 0 <= cfg.midtrain.general_weight < 1:
        raise ConfigError(f"midtrain.general_weight must be within [0, 1), got {cfg.midtrain.general_weight}")
    for stage in MODELS:
        if getattr(cfg, stage).max_steps < 1:
            raise ConfigError(f"{stage}.max_steps must be >= 1")
    if cfg.loop.model not in MODELS and cfg.loop.model != "none":
        raise ConfigError(f"loop.model: one of {', '.join(MODELS)} or none, got '{cfg.loop.model}'")
    for kind in cfg.extra:
        if kind not in EXTRA_KINDS:
            raise ConfigError(f"extra.{kind}: unknown step kind; known: {', '.join(EXTRA_KINDS)}")


# ------------------------------------------------------------------------------------------ drill corpus

_STATUSES = ["pending", "shipped", "delivered", "open", "closed", "active", "paused", "done", "late", "ready"]
_NUMBER_KEYS = ["total", "price", "amount", "balance", "weight", "score", "cost"]
_COUNT_KEYS = ["count", "quantity", "stock", "pages", "seats", "age"]
_WORD_KEYS = {
    "color": ["red", "blue", "green", "black", "white", "yellow"],
    "city": ["Lima", "Oslo", "Pune", "Kyoto", "Accra", "Quito", "Riga", "Perth"],
    "kind": ["book", "lamp", "chair", "phone", "bike", "desk", "kettle", "scarf"],
}
_PREFIXES = ["O", "K", "P", "C", "A", "R", "T", "X"]


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(_PREFIXES)}{rng.randint(1000, 9999)}"


def _money(rng: random.Random) -> str:
    return f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"


def integer_expression(rng: random.Random) -> tuple[str, str, int]:
    """An integer expression as LaTeX, as Python, and its value."""
    n = [rng.randint(2, 99) if rng.random() < 0.8 else rng.randint(100, 999) for _ in range(4)]
    a, b, c, d = n
    forms = [
        f"{a}*{b}",
        f"{a} + {b}",
        f"{a} - {b}*{c}",
        f"{a}*{b} - {c}",
        f"({a} + {b})*{c} - {d}",
        f"{a}*{b} + {c}*{d}",
        f"{a} - {b}*{c} + {d}",
        f"({a} - {b})*({c} + {d})",
        f"{a} + {b} + {c}",
    ]
    code = rng.choice(forms)
    return code.replace("*", " \\times "), code, eval(code)  # only digits and operators written above


def _drill_expression(rng: random.Random) -> str:
    tex, code, value = integer_expression(rng)
    return rng.choice(
        [
            f"In Python, ${tex}$ is written {code}. print({code}) prints {value}, so ${tex} = {value}$.",
            f">>> print({code})\n{value}",
            f"To compute ${tex}$, run print({code}); it prints {value}. The result is $\\boxed{{{value}}}$.",
            f"${tex}$ becomes {code} in code, which evaluates to {value}.",
        ]
    )


def _record(rng: random.Random) -> tuple[str, dict[str, Any]]:
    ident = _ident(rng)
    record: dict[str, Any] = {"id": ident}
    keys = rng.sample(["status", "number", "count", "word"], rng.randint(2, 4))
    for key in keys:
        if key == "status":
            record["status"] = rng.choice(_STATUSES)
        elif key == "number":
            record[rng.choice(_NUMBER_KEYS)] = float(_money(rng))
        elif key == "count":
            record[rng.choice(_COUNT_KEYS)] = rng.randint(1, 500)
        else:
            name = rng.choice(sorted(_WORD_KEYS))
            record[name] = rng.choice(_WORD_KEYS[name])
    if rng.random() < 0.5:
        record["parts"] = [
            {"id": f"{ident}-{i}", "count": rng.randint(1, 9), "price": float(_money(rng))}
            for i in range(1, rng.randint(2, 4))
        ]
    keys = list(record)
    rng.shuffle(keys)
    return ident, {k: record[k] for k in keys}


def _drill_lookup(rng: random.Random) -> str:
    ident, record = _record(rng)
    facts = [f"its {key} is {value}" for key, value in record.items() if key not in ("id", "parts")]
    rng.shuffle(facts)
    said = "; ".join(facts[: rng.randint(1, len(facts))]) if facts else "it has parts"
    return f"{json.dumps(record)}\nRecord {ident}: {said}."


def _drill_copy(rng: random.Random) -> str:
    items = [
        str(rng.randint(0, 10 ** rng.randint(1, 6))) if rng.random() < 0.7 else _ident(rng)
        for _ in range(rng.randint(1, 4))
    ]
    shown = " ".join(items)
    return rng.choice(
        [
            f"Copy: {shown} -> {shown}",
            f"Say it again: {shown}. {shown}.",
            f"The code is {shown}; once more, the code is {shown}.",
        ]
    )


def drill_corpus(n: int, seed: int = 0) -> Iterator[str]:
    """``n`` documents that teach what an agent does most: copy exact strings, turn maths into code, and
    read a value out of a JSON record. No chat template and no agent format: those come in mid-training."""
    rng = random.Random(f"drills/{seed}")
    makers = [_drill_expression, _drill_lookup, _drill_copy]
    for _ in range(n):
        yield "\n".join(rng.choice(makers)(rng) for _ in range(rng.randint(2, 5)))


# ------------------------------------------------------------------------------------- command lines


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
        self, name: str, title: str, command: str, action: Callable[[], None], marker: Path | None = None
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


# ------------------------------------------------------------------------------------------------ demo


class Demo:
    def __init__(self, cfg: DemoConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seed = cfg.seed

    # paths -------------------------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def synth_dir(self, env: str, kind: str) -> Path:
        return self.path("synth", f"{env}-{kind}")

    def ckpt(self, stage: str) -> Path:
        return self.path(stage)

    def teacher_tasks(self, env: DemoEnvConfig) -> int:
        return round(env.train * self.cfg.teacher.share)

    # command lines -------------------------------------------------------------------------------------

    def extra(self, kind: str) -> list[str]:
        return list(self.cfg.extra.get(kind, []))

    def env_args(self, name: str, env: DemoEnvConfig, split: str, n: int, seed: int) -> list[str]:
        return [
            f"env={name}",
            f"env.tasks.split={split}",
            f"env.tasks.n={n}",
            f"env.tasks.seed={seed}",
            *overrides("env.tasks.options", env.tasks),
            *overrides("env.options", env.options),
            *overrides("env.sandbox.options", env.sandbox),
        ]

    def synth_args(self, name: str, env: DemoEnvConfig, kind: str) -> list[str]:
        args = [
            "synth",
            *self.env_args(
                name, env, "train", env.train if kind == "reference" else self.teacher_tasks(env), self.seed
            ),
            "policy=reference",
        ]
        if kind == "teacher":
            args += [
                "strategy=teacher",
                f"strategy.options.mistakes={hydra_value(self.cfg.teacher.mistakes)}",
                "strategy.options.require_mistake=false",
            ]
        else:
            args += ["strategy=direct"]
        return args + [
            f"seed={self.seed}",
            f"out={self.synth_dir(name, kind)}",
            "resume=overwrite",
            *self.extra("synth"),
        ]

    def trainer_args(self, knobs: StageKnobs) -> list[str]:
        return [
            f"trainer.max_steps={knobs.max_steps}",
            f"trainer.learning_rate={knobs.learning_rate}",
            f"trainer.max_length={knobs.max_length}",
            f"trainer.per_device_train_batch_size={knobs.batch_size}",
            f"trainer.gradient_accumulation_steps={knobs.accumulation}",
            f"trainer.lr_scheduler={knobs.lr_scheduler}",
            f"trainer.warmup_ratio={knobs.warmup_ratio}",
            f"trainer.decay_ratio={knobs.decay_ratio}",
            f"trainer.logging_steps={max(1, min(5, knobs.max_steps // 20))}",  # >= 10 points per loss curve
            "trainer.save_steps=1000000",
            "trainer.resume=never",
            f"seed={self.seed}",
        ]

    def trajectories_glob(self) -> str:
        return str(self.path("synth", "*", "data", "*.jsonl"))

    def tokenizer_args(self) -> list[str]:
        c = self.cfg.corpus
        sources = {
            "drills": {"path": str(self.path("data", "drills.jsonl"))},
            "trajectories": {"path": str(self.path("data", "trajectories.rendered.jsonl"))},
        }
        # The STEM tokenizer the demo's results were measured with (the stage's default is now the superword one).
        return [
            "train",
            "stage=tokenizer",
            "tokenizer.method=stem",
            f"out={self.path('tokenizer')}",
            f"tokenizer.vocab_size={self.cfg.vocab_size}",
            f"data.sources.main.n={c.general}",
            f"data.sources.main.seed={self.seed}",
            f"++data.sources={hydra_value(sources)}",
            f"seed={self.seed}",
            *self.extra("tokenizer"),
        ]

    def pretrain_args(self) -> list[str]:
        c = self.cfg.corpus
        args = [
            "train",
            "stage=pretrain",
            "model=tiny-mla",
            f"model.name={self.cfg.arch.get('preset', 'mla')}",
            *overrides("model.arch", self.cfg.arch),
            f"model.tokenizer={self.path('tokenizer')}",
            f"out={self.ckpt('pretrain')}",
            f"data.sources.main.n={c.general}",
            f"data.sources.main.seed={self.seed}",
            f"data.sources.main.weight={1 - c.drill_weight}",
        ]
        if c.drill_weight > 0 and c.drills > 0:
            drills = {"drills": {"path": str(self.path("data", "drills.jsonl")), "weight": c.drill_weight}}
            args += [f"++data.sources={hydra_value(drills)}", "data.stopping=all_exhausted"]
        return args + self.trainer_args(self.cfg.pretrain) + self.extra("pretrain")

    def midtrain_args(self) -> list[str]:
        k = self.cfg.midtrain
        args = [
            "train",
            "stage=midtrain",
            "model=hf",
            f"model.path={self.ckpt('pretrain')}",
            "model.name=midtrain",
            f"out={self.ckpt('midtrain')}",
            f"data={self.trajectories_glob()}",
            f"data.sources.main.weight={1 - k.general_weight}",
        ]
        if k.general_weight > 0:
            args += [
                f"data.sources.general.weight={k.general_weight}",
                f"data.sources.general.n={self.cfg.corpus.general}",
                f"data.sources.general.seed={self.seed + 1}",
            ]
        else:
            args += ["data.sources.general.weight=0"]
        if k.loss_roles is not None:
            args += [f"data.loss_roles={hydra_value(list(k.loss_roles))}"]
        return args + self.trainer_args(k) + self.extra("midtrain")

    def sft_args(self) -> list[str]:
        return (
            [
                "train",
                "stage=sft",
                "model=hf",
                f"model.path={self.ckpt('midtrain')}",
                "model.name=sft",
                f"out={self.ckpt('sft')}",
                f"data={self.trajectories_glob()}",
            ]
            + self.trainer_args(self.cfg.sft)
            + self.extra("sft")
        )

    def serve_args(self, stage: str) -> list[str]:
        return [
            "serve",
            "engine=transformers",
            "model=hf",
            f"model.path={self.ckpt(stage)}",
            f"model.name={stage}",
            "port=0",
            f"max_batch_size={self.cfg.eval.max_batch_size}",
            *self.extra("serve"),
        ]

    def sampling_args(self, temperature: float) -> list[str]:
        e = self.cfg.eval
        return [
            f"sampling.temperature={temperature}",
            f"sampling.max_tokens={e.max_tokens}",
            f"limits.max_turns={e.max_turns}",
            f"limits.max_completion_tokens={e.max_completion_tokens}",
            f"concurrency={e.concurrency}",
        ]

    def model_args(self, stage: str, url: str) -> list[str]:
        return ["model=hf", f"model.path={self.ckpt(stage)}", f"model.name={stage}", f"model.base_url={url}"]

    def eval_args(self, stage: str, name: str, env: DemoEnvConfig, url: str) -> list[str]:
        return [
            "eval",
            *self.env_args(name, env, "test", env.test, self.seed),
            *self.model_args(stage, url),
            *self.sampling_args(0.0),
            f"confidence={self.cfg.eval.confidence}",
            f"seed={self.seed}",
            f"out={self.path('eval', stage, name)}",
            "resume=overwrite",
            *self.extra("eval"),
        ]

    def loop_args(self, stage: str, name: str, env: DemoEnvConfig, url: str) -> list[str]:
        lp = self.cfg.loop
        return [
            "synth",
            *self.env_args(name, env, "train", lp.tasks, self.seed + 1),
            *self.model_args(stage, url),
            f"strategy={lp.strategy}",
            f"n_samples={lp.n_samples}",
            *self.sampling_args(lp.temperature),
            f"sampling.seed={self.seed}",
            f"seed={self.seed}",
            f"out={self.path('loop', name)}",
            "resume=overwrite",
            *self.extra("loop"),
        ]

    # the run -------------------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        check_config(cfg)
        self.out.mkdir(parents=True, exist_ok=True)
        envs = cfg.envs
        teacher_envs = [n for n, e in envs.items() if self.teacher_tasks(e) > 0]
        loop_envs = list(envs) if cfg.loop.model != "none" and cfg.loop.tasks > 0 else []
        total = 1 + len(envs) + len(teacher_envs) + 2 + 3 + 3 * len(envs) + len(loop_envs)
        runner = Runner(self.out, cfg.resume, total)
        started = time.perf_counter()
        runner.console.print(
            f"[bold]agentkit demo[/bold] -> {self.out}  (seed {self.seed}, "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})"
        )

        corpus = self.path("data", "drills.jsonl")
        runner.step(
            "drills",
            "generate the pre-training drills (copying, maths as code, JSON lookup)",
            f"# {cfg.corpus.drills} drill documents, seed {self.seed} -> {corpus}",
            lambda: write_texts(corpus, drill_corpus(cfg.corpus.drills, self.seed)),
            corpus,
        )
        for name, env in envs.items():
            args = self.synth_args(name, env, "reference")
            runner.step(
                f"synth-{name}-reference",
                f"synthesize {name} trajectories (reference solver)",
                shown(args),
                lambda a=args: run_agentkit(a),
                self.synth_dir(name, "reference") / "manifest.json",
            )
        for name in teacher_envs:
            args = self.synth_args(name, envs[name], "teacher")
            runner.step(
                f"synth-{name}-teacher",
                f"synthesize {name} trajectories with mistakes and fixes (teacher)",
                shown(args),
                lambda a=args: run_agentkit(a),
                self.synth_dir(name, "teacher") / "manifest.json",
            )
        rendered = self.path("data", "trajectories.rendered.jsonl")
        runner.step(
            "render",
            "render the trajectories with the chat template (tokenizer training text)",
            f"# {self.trajectories_glob()} -> {rendered}",
            lambda: write_texts(rendered, rendered_trajectories(self.trajectories_glob())),
            rendered,
        )
        for stage, args in (
            ("tokenizer", self.tokenizer_args()),
            ("pretrain", self.pretrain_args()),
            ("midtrain", self.midtrain_args()),
            ("sft", self.sft_args()),
        ):
            report = "tokenizer_report.json" if stage == "tokenizer" else "train_report.json"
            runner.step(
                stage, TITLES[stage], shown(args), lambda a=args: run_agentkit(a), self.path(stage, report)
            )
        for stage in MODELS:
            self.serve_and_evaluate(runner, stage, loop_envs if stage == cfg.loop.model else [])
        report = build_report(self, runner.records, time.perf_counter() - started)
        write_report(self, report)
        print_results(runner.console, report)
        return 0

    def serve_and_evaluate(self, runner: Runner, stage: str, loop_envs: list[str]) -> None:
        """Evaluate ``stage`` on every env (and run the loop), starting the server only if a step must run."""
        from agentkit.config import ModelConfig
        from agentkit.server.launch import embedded_server

        state: dict[str, Any] = {"url": None, "stack": None}
        placeholder = "http://127.0.0.1:PORT/v1"

        def url() -> str:
            if state["url"] is None:
                import contextlib

                runner.console.print(
                    f"[bold]serving {stage}:[/bold] {shown(self.serve_args(stage))}",
                    markup=True,
                    highlight=False,
                    soft_wrap=True,
                )
                stack = contextlib.ExitStack()
                model = ModelConfig(name=stage, path=str(self.ckpt(stage)))
                log = self.path("logs", f"serve-{stage}.log")
                state["url"] = stack.enter_context(
                    embedded_server(
                        model,
                        max_batch_size=self.cfg.eval.max_batch_size,
                        log_path=log,
                        extra=self.extra("serve"),
                    )
                )
                state["stack"] = stack
            return state["url"]

        try:
            for name, env in self.cfg.envs.items():
                args = self.eval_args(stage, name, env, placeholder)
                runner.step(
                    f"eval-{stage}-{name}",
                    f"evaluate {stage} on held-out {name} tasks",
                    shown(args),
                    lambda n=name, e=env: run_agentkit(self.eval_args(stage, n, e, url())),
                    self.path("eval", stage, name, "report.json"),
                )
            for name in loop_envs:
                env = self.cfg.envs[name]
                args = self.loop_args(stage, name, env, placeholder)
                runner.step(
                    f"loop-{name}",
                    f"{stage} model synthesizes new verified {name} trajectories",
                    shown(args),
                    lambda n=name, e=env: run_agentkit(self.loop_args(stage, n, e, url())),
                    self.path("loop", name, "manifest.json"),
                )
        finally:
            if state["stack"] is not None:
                state["stack"].close()


TITLES = {
    "tokenizer": "train the STEM tokenizer (generated corpus + drills + trajectory text)",
    "pretrain": "pre-train a tiny MLA model from scratch (commonsense -> STEM text and drills)",
    "midtrain": "agentic mid-training on the trajectories",
    "sft": "SFT on the trajectories (loss on assistant turns)",
}


def write_texts(path: Path, texts) -> int:
    """``{"text": ...}`` lines, written atomically."""
    count = 0
    with atomic_open(path) as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            count += 1
    return count


def _trajectory_rows(pattern: str) -> Iterator[dict[str, Any]]:
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def rendered_trajectories(pattern: str) -> Iterator[str]:
    """Each trajectory as the chat template renders it, tool block included: the text the model reads."""
    from agentkit.models import load_tokenizer

    tokenizer = load_tokenizer()
    for row in _trajectory_rows(pattern):
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        yield tokenizer.apply_chat_template(messages, tools=row.get("tools") or None, tokenize=False)


# ---------------------------------------------------------------------------------------------- report


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pass_summary(passed: int, samples: int, confidence: float) -> dict[str, Any]:
    from agentkit.synth.metrics import wilson_interval

    low, high = wilson_interval(passed, samples, confidence)
    return {
        "passed": passed,
        "samples": samples,
        "pass@1": passed / samples if samples else None,
        "ci": [round(low, 4), round(high, 4)] if samples else None,
    }


def dataset_stats(demo: Demo) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for path in sorted(demo.path("synth").glob("*")):
        manifest = _read_json(path / "manifest.json") or {}
        report = _read_json(path / "report.json") or {}
        mistakes: Counter = Counter()
        chars = []
        for row in _trajectory_rows(str(path / "data" / "*.jsonl")):
            mistake = (row.get("meta") or {}).get("mistake")
            mistakes[mistake["kind"] if mistake else "none"] += 1
            chars.append(sum(len(m.get("content") or "") for m in row["messages"]))
        counts = manifest.get("counts", {})
        stats[path.name] = {
            "tasks": counts.get("tasks"),
            "rollouts": counts.get("rollouts"),
            "kept": counts.get("curated"),
            "dropped": counts.get("dropped"),
            "pass_rate": report.get("pass_rate"),
            "turns_mean": (report.get("turns") or {}).get("mean"),
            "tool_calls": (report.get("tools") or {}).get("calls"),
            "tool_errors": (report.get("tools") or {}).get("errors"),
            "mistakes": dict(mistakes),
            "chars_mean": round(sum(chars) / len(chars), 1) if chars else None,
            "wall_s": (report.get("seconds") or {}).get("wall"),
        }
    return stats


def train_stats(demo: Demo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tok = _read_json(demo.path("tokenizer", "tokenizer_report.json"))
    if tok:
        out["tokenizer"] = {k: tok.get(k) for k in ("vocab_size", "docs", "seconds", "compression")}
    for stage in MODELS:
        report = _read_json(demo.path(stage, "train_report.json"))
        if not report:
            continue
        sources = (report.get("mixture") or {}).get("sources") or {}
        out[stage] = {
            "steps": report.get("steps"),
            "parameters": report.get("parameters"),
            "seconds": report.get("seconds"),
            "tokens": report.get("tokens"),
            "tokens_per_second": report.get("tokens_per_second"),
            "first_loss": report.get("first_loss"),
            "last_loss": report.get("last_loss"),
            "sources": {
                name: {k: s.get(k) for k in ("kept", "examples", "tokens", "trained_tokens", "truncated")}
                for name, s in sources.items()
            },
            "loss_history": report.get("loss_history") or [],
        }
    return out


def eval_results(demo: Demo) -> dict[str, Any]:
    confidence = demo.cfg.eval.confidence
    results: dict[str, Any] = {}
    for stage in MODELS:
        per_env: dict[str, Any] = {}
        passed = samples = 0
        for name in demo.cfg.envs:
            report = _read_json(demo.path("eval", stage, name, "report.json"))
            if not report:
                continue
            m = report["metrics"]
            per_env[name] = pass_summary(m["passed"], m["samples"], confidence) | {
                "bootstrap": (m.get("pass@1") or {}).get("bootstrap"),
                "status": report.get("status"),
                "completion_tokens": (report.get("tokens") or {}).get("completion"),
                "wall_s": (report.get("seconds") or {}).get("wall"),
            }
            passed += m["passed"]
            samples += m["samples"]
        if per_env:
            results[stage] = {"envs": per_env, "overall": pass_summary(passed, samples, confidence)}
    return results


def loop_results(demo: Demo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(demo.path("loop").glob("*")):
        manifest = _read_json(path / "manifest.json") or {}
        report = _read_json(path / "report.json") or {}
        counts = manifest.get("counts", {})
        out[path.name] = {
            "model": demo.cfg.loop.model,
            "episodes": counts.get("rollouts"),
            "passed": report.get("passed"),
            "pass_rate": report.get("pass_rate"),
            "pass_rate_ci": report.get("pass_rate_wilson95"),
            "kept": counts.get("curated"),
            "dataset": str(path / "data"),
            "wall_s": (report.get("seconds") or {}).get("wall"),
        }
    return out


def build_report(demo: Demo, records: list[StepRecord], wall: float) -> dict[str, Any]:
    from agentkit import __version__

    results = eval_results(demo)
    targets = {}
    mid = (results.get("midtrain") or {}).get("overall", {}).get("pass@1")
    pre = (results.get("pretrain") or {}).get("overall", {}).get("pass@1")
    if mid is not None and pre is not None:
        targets = {"midtrain_at_least_0.8": mid >= 0.8, "pretrain_at_most_0.1": pre <= 0.1}
    return {
        "agentkit": __version__,
        "seed": demo.seed,
        "out": str(demo.out),
        "wall_seconds": round(wall, 1),
        "cpus": os.cpu_count(),
        "results": results,
        "targets": targets,
        "loop": loop_results(demo),
        "datasets": dataset_stats(demo),
        "training": train_stats(demo),
        "steps": [dataclasses.asdict(r) | {"seconds": round(r.seconds, 1)} for r in records],
        "config": dataclasses.asdict(demo.cfg),
    }


def _pct(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("pass@1") is None:
        return "-"
    lo, hi = summary["ci"]
    return f"{summary['pass@1']:.1%} [{lo:.1%}, {hi:.1%}] ({summary['passed']}/{summary['samples']})"


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    envs = list(cfg["envs"])
    conf = f"{cfg['eval']['confidence']:.0%}"
    lines = [
        "# agentkit demo",
        "",
        f"Seed {report['seed']}, {report['cpus']} CPUs, wall {report['wall_seconds']:.0f} s. "
        f"pass@1 with greedy decoding on held-out tasks; {conf} Wilson intervals.",
        "",
        "| model | " + " | ".join(envs) + " | overall |",
        "|---|" + "---|" * (len(envs) + 1),
    ]
    for stage, result in report["results"].items():
        cells = [_pct(result["envs"].get(name)) for name in envs]
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {_pct(result['overall'])} |")
    if report["targets"]:
        lines += [
            "",
            "Targets: "
            + ", ".join(
                f"{k.replace('_', ' ')}: {'met' if v else 'NOT met'}" for k, v in report["targets"].items()
            ),
        ]
    if report["loop"]:
        lines += [
            "",
            "## Round 2: the trained model synthesizes verified trajectories",
            "",
            "| env | model | episodes | passed | pass rate | kept |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in report["loop"].items():
            rate = "-" if row["pass_rate"] is None else f"{row['pass_rate']:.1%}"
            lines.append(
                f"| {name} | {row['model']} | {row['episodes']} | {row['passed']} | {rate} | {row['kept']} |"
            )
    lines += [
        "",
        "## Datasets",
        "",
        "| run | tasks | kept | pass rate | mean turns | tool calls (errors) | mistakes | mean chars |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["datasets"].items():
        mistakes = ", ".join(f"{k} {v}" for k, v in sorted(row["mistakes"].items()))
        rate = "-" if row["pass_rate"] is None else f"{row['pass_rate']:.0%}"
        lines.append(
            f"| {name} | {row['tasks']} | {row['kept']} | {rate} | {row['turns_mean']} | "
            f"{row['tool_calls']} ({row['tool_errors']}) | {mistakes} | {row['chars_mean']} |"
        )
    training = report["training"]
    lines += [
        "",
        "## Training",
        "",
        "| stage | steps | parameters | tokens | tokens/s | loss first -> last | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage in MODELS:
        row = training.get(stage)
        if row:
            tps = f"{row['tokens_per_second']:.0f}" if row.get("tokens_per_second") else "-"
            first = f"{row['first_loss']:.3f}" if row.get("first_loss") is not None else "-"
            last = f"{row['last_loss']:.3f}" if row.get("last_loss") is not None else "-"
            lines.append(
                f"| {stage} | {row['steps']} | {row['parameters']:,} | {row['tokens']:,} | {tps} | "
                f"{first} -> {last} | {row['seconds']:.0f} |"
            )
    tok = training.get("tokenizer")
    if tok and tok.get("compression"):
        parts = ", ".join(f"{d} {r['ratio']:.3f}" for d, r in tok["compression"].items())
        lines += [
            "",
            f"Tokenizer: {tok['vocab_size']} tokens from {tok['docs']} documents; bytes/token against a "
            f"plain byte-level BPE (ratio > 1 compresses better): {parts}.",
        ]
    lines += [
        "",
        "## Steps",
        "",
        "| step | seconds | load (1 min) before -> after | reused |",
        "|---|---|---|---|",
    ]
    for step in report["steps"]:
        load = step.get("load")
        shown_load = f"{load[0]} -> {load[1]}" if load else "-"
        lines.append(
            f"| {step['name']} | {step['seconds']:.1f} | {shown_load} | {'yes' if step['reused'] else ''} |"
        )
    lines += ["", "## Commands", "", "```"] + [step["command"] for step in report["steps"]] + ["```"]
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def save_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    training = report["training"]
    fig, axes = plt.subplots(1, len(MODELS), figsize=(4 * len(MODELS), 3.2))
    for ax, stage in zip(axes, MODELS, strict=True):
        history = (training.get(stage) or {}).get("loss_history") or []
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".")
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(folder / "loss.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    results = report["results"]
    groups = [*report["config"]["envs"], "overall"]
    fig, ax = plt.subplots(figsize=(1.8 * len(groups) + 2, 3.4))
    width = 0.8 / max(1, len(results))
    for i, (stage, result) in enumerate(results.items()):
        rows = [result["envs"].get(g) if g != "overall" else result["overall"] for g in groups]
        values = [r["pass@1"] if r and r["pass@1"] is not None else 0.0 for r in rows]
        lows = [v - r["ci"][0] if r and r["ci"] else 0.0 for v, r in zip(values, rows, strict=True)]
        highs = [r["ci"][1] - v if r and r["ci"] else 0.0 for v, r in zip(values, rows, strict=True)]
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(groups))]
        ax.bar(xs, values, width, yerr=[lows, highs], capsize=3, label=stage)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass@1 (held-out)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths.append(folder / "pass_at_1.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(demo: Demo, report: dict[str, Any]) -> None:
    if demo.cfg.plots:
        report["plots"] = [str(p.relative_to(demo.out)) for p in save_plots(report, demo.path("plots"))]
    demo.path("report.json").write_text(json.dumps(report, indent=2, default=str))
    demo.path("report.md").write_text(markdown(report))


def print_results(console, report: dict[str, Any]) -> None:
    from rich.table import Table

    envs = list(report["config"]["envs"])
    table = Table(title=f"held-out pass@1, greedy ({report['config']['eval']['confidence']:.0%} Wilson CI)")
    for column in ("model", *envs, "overall"):
        table.add_column(column)
    for stage, result in report["results"].items():
        table.add_row(stage, *[_pct(result["envs"].get(n)) for n in envs], _pct(result["overall"]))
    console.rule("[bold]results")
    console.print(table)
    steps = Table(title="wall time per step")
    for column in ("step", "seconds", "load before -> after", "reused"):
        steps.add_column(column)
    for step in report["steps"]:
        load = step.get("load")
        steps.add_row(
            step["name"],
            f"{step['seconds']:.1f}",
            f"{load[0]} -> {load[1]}" if load else "-",
            "yes" if step["reused"] else "",
        )
    console.print(steps)
    console.print(f"total {report['wall_seconds']:.0f} s; report: {Path(report['out']) / 'report.md'}")


def demo(cfg: DemoConfig) -> int:
    """``agentkit demo``: train a tiny MLA agent from scratch and show mid-training lift its pass rate."""
    return Demo(cfg).run()
