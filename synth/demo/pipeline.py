"""The demo as a list of steps: each an ``agentkit ...`` command derived from the config, run in order.

The ablation (PAPER.md, agentic mid-training): from one pre-trained checkpoint,
  A = SFT only;  B = agentic mid-training, then the same SFT;  C = B with half the mid-training steps.
Every arm's final checkpoint is evaluated by an agent in the sandboxes on held-out tasks per family; the pre-trained
and mid-trained checkpoints are also scored by likelihood on items built from held-out reference trajectories
(APTBench-style), so mid-training is measured before any SFT.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkit.synth.demo.config import DemoConfig, FamilyConfig, StageKnobs, check_config
from agentkit.synth.demo.corpus import drill_corpus, rendered_trajectories, write_texts
from agentkit.synth.demo.steps import Runner, hydra_value, overrides, run_agentkit, shown

ARMS = ("A", "B", "C")
TITLES = {
    "tokenizer": "train the STEM tokenizer (generated corpus + drills + trajectory text)",
    "pretrain": "pre-train a tiny MLA model from scratch (commonsense -> STEM text and drills)",
}


class Demo:
    def __init__(self, cfg: DemoConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seed = cfg.seed
        self.served_by = "transformers"
        """The engine every checkpoint is served by (``eval.engine`` resolved when the run starts)."""

    # names and paths -------------------------------------------------------------------------------------

    def arms(self) -> list[str]:
        return ["A", "B", "C"] if self.cfg.arms.half else ["A", "B"]

    def models(self) -> list[str]:
        """Checkpoints evaluated by an agent: the pre-trained one and each arm's final (post-SFT) checkpoint."""
        return ["pretrain", *self.arms()]

    def likelihood_models(self) -> list[str]:
        """Checkpoints scored by likelihood before any SFT: the pre-trained one (= arm A before SFT), mid-B, mid-C."""
        return ["pretrain", *(f"mid-{arm}" for arm in self.arms() if arm != "A")]

    def transfer_families(self) -> list[str]:
        return [name for name, fam in self.cfg.families.items() if fam.sft == 0 and fam.mid > 0]

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def ckpt(self, model: str) -> Path:
        return self.path("ckpt", model)

    def synth_dir(self, split: str, family: str, kind: str = "reference") -> Path:
        return self.path("synth", split, f"{family}-{kind}")

    def data_glob(self, split: str) -> str:
        return str(self.path("synth", split, "*", "data", "*.jsonl"))

    def teacher_tasks(self, fam: FamilyConfig, n: int) -> int:
        return round(n * self.cfg.mix.teacher_share)

    def mid_steps(self, arm: str) -> int:
        steps = self.cfg.midtrain.max_steps
        return steps // 2 if arm == "C" else steps

    # command lines ---------------------------------------------------------------------------------------

    def extra(self, kind: str) -> list[str]:
        return list(self.cfg.extra.get(kind, []))

    def env_args(self, family: str, split: str, n: int, seed: int) -> list[str]:
        fam = self.cfg.families[family]
        env = self.cfg.envs[fam.env]
        return [
            f"env={fam.env}",
            f"env.tasks.split={split}",
            f"env.tasks.n={n}",
            f"env.tasks.seed={seed}",
            *overrides("env.tasks.options", fam.tasks),
            *overrides("env.options", env.options),
            *overrides("env.sandbox.options", env.sandbox),
        ]

    # Task seeds: mid-training, SFT and the loop draw different train-split tasks; the held-out tasks are the
    # test split (a stable hash of the task id), never in any training set.
    def task_seed(self, split: str) -> int:
        return self.seed + {"mid": 0, "sft": 1000, "heldout": 0, "loop": 2000}[split]

    def synth_args(self, split: str, family: str, kind: str, n: int) -> list[str]:
        task_split = "test" if split == "heldout" else "train"
        args = ["synth", *self.env_args(family, task_split, n, self.task_seed(split)), "policy=reference"]
        if kind == "teacher":
            args += [
                "strategy=teacher",
                f"strategy.options.mistakes={hydra_value(self.cfg.mix.mistakes)}",
                "strategy.options.require_mistake=false",
            ]
        else:
            args += ["strategy=direct"]
        return [
            *args,
            f"seed={self.seed}",
            f"out={self.synth_dir(split, family, kind)}",
            "resume=overwrite",
            *self.extra("synth"),
        ]

    def synth_jobs(self) -> Iterator[tuple[str, str, str, int]]:
        """(split, family, kind, tasks) of every reference-solver synthesis."""
        for name, fam in self.cfg.families.items():
            if fam.mid:
                yield "mid", name, "reference", fam.mid
                if self.teacher_tasks(fam, fam.mid):
                    yield "mid", name, "teacher", self.teacher_tasks(fam, fam.mid)
            if fam.sft:
                yield "sft", name, "reference", fam.sft
            if self.cfg.eval.aptbench:
                yield "heldout", name, "reference", fam.test
                if self.teacher_tasks(fam, fam.test):
                    yield "heldout", name, "teacher", self.teacher_tasks(fam, fam.test)

    def trainer_args(self, knobs: StageKnobs, max_steps: int | None = None) -> list[str]:
        steps = max_steps or knobs.max_steps
        args = [
            f"trainer.max_steps={steps}",
            f"trainer.learning_rate={knobs.learning_rate}",
            f"trainer.max_length={knobs.max_length}",
            f"trainer.per_device_train_batch_size={knobs.batch_size}",
            f"trainer.gradient_accumulation_steps={knobs.accumulation}",
            f"trainer.lr_scheduler={knobs.lr_scheduler}",
            f"trainer.warmup_ratio={knobs.warmup_ratio}",
            f"trainer.decay_ratio={knobs.decay_ratio}",
            f"trainer.logging_steps={max(1, min(5, steps // 20))}",  # >= 10 points per loss curve
            "trainer.save_steps=1000000",
            "trainer.resume=never",
            f"seed={self.seed}",
        ]
        if knobs.loss_roles is not None:
            args.append(f"data.loss_roles={hydra_value(list(knobs.loss_roles))}")
        return args

    def tokenizer_args(self) -> list[str]:
        c = self.cfg.corpus
        sources = {
            "drills": {"path": str(self.path("data", "drills.jsonl"))},
            "trajectories": {"path": str(self.path("data", "trajectories.rendered.jsonl"))},
        }
        # The STEM tokenizer the demo was tuned with (the stage's default is the superword one).
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

    def midtrain_args(self, arm: str) -> list[str]:
        k = self.cfg.midtrain
        args = [
            "train",
            "stage=midtrain",
            "model=hf",
            f"model.path={self.ckpt('pretrain')}",
            f"model.name=mid-{arm}",
            f"out={self.ckpt(f'mid-{arm}')}",
            f"data={self.data_glob('mid')}",
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
        return args + self.trainer_args(k, self.mid_steps(arm)) + self.extra("midtrain")

    def sft_args(self, arm: str) -> list[str]:
        start = "pretrain" if arm == "A" else f"mid-{arm}"
        return [
            "train",
            "stage=sft",
            "model=hf",
            f"model.path={self.ckpt(start)}",
            f"model.name={arm}",
            f"out={self.ckpt(arm)}",
            f"data={self.data_glob('sft')}",
            *self.trainer_args(self.cfg.sft),
            *self.extra("sft"),
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

    def model_args(self, model: str, url: str) -> list[str]:
        return ["model=hf", f"model.path={self.ckpt(model)}", f"model.name={model}", f"model.base_url={url}"]

    def eval_args(self, model: str, family: str, url: str) -> list[str]:
        fam = self.cfg.families[family]
        return [
            "eval",
            *self.env_args(family, "test", fam.test, self.task_seed("heldout")),
            *self.model_args(model, url),
            *self.sampling_args(0.0),
            f"confidence={self.cfg.eval.confidence}",
            f"seed={self.seed}",
            f"out={self.path('eval', model, family)}",
            "resume=overwrite",
            *self.extra("eval"),
        ]

    def aptbench_args(self, model: str) -> list[str]:
        return [
            "eval",
            f"aptbench.data={self.data_glob('heldout')}",
            f"aptbench.seed={self.seed}",
            f"aptbench.per_family={self.cfg.eval.aptbench_per_family}",
            "model=hf",
            f"model.path={self.ckpt(model)}",
            f"model.name={model}",
            f"out={self.path('aptbench', model)}",
            *self.extra("aptbench"),
        ]

    def loop_args(self, model: str, family: str, url: str) -> list[str]:
        lp = self.cfg.loop
        return [
            "synth",
            *self.env_args(family, "train", lp.tasks, self.task_seed("loop")),
            *self.model_args(model, url),
            f"strategy={lp.strategy}",
            f"n_samples={lp.n_samples}",
            *self.sampling_args(lp.temperature),
            f"sampling.seed={self.seed}",
            f"seed={self.seed}",
            f"out={self.path('loop', family)}",
            "resume=overwrite",
            *self.extra("loop"),
        ]

    def serve_args(self, model: str, engine: str = "transformers") -> list[str]:
        if engine == "vllm":
            return [
                "serve",
                "engine=vllm",
                "model=hf",
                f"model.path={self.ckpt(model)}",
                f"model.name={model}",
            ]
        return [
            "serve",
            "engine=transformers",
            "model=hf",
            f"model.path={self.ckpt(model)}",
            f"model.name={model}",
            "port=0",
            f"max_batch_size={self.cfg.eval.max_batch_size}",
            *self.serve_overrides(),
        ]

    def serve_overrides(self) -> list[str]:
        threads = [f"threads={self.cfg.eval.serve_threads}"] if self.cfg.eval.serve_threads > 0 else []
        return threads + self.extra("serve")

    def engine(self) -> str:
        """The serving engine: ``eval.engine``, with ``auto`` resolved (vLLM if installed and the latent fits)."""
        from agentkit.errors import ConfigError
        from agentkit.models import resolve_arch
        from agentkit.server.vllm import VllmConfig, check_servable, find_vllm

        choice = self.cfg.eval.engine
        if choice == "transformers":
            return choice
        arch = resolve_arch(self.cfg.arch)
        if choice == "vllm":  # refused now, in one line, rather than after the training steps
            try:
                check_servable(arch, "eval.engine=vllm")
            except ConfigError as err:
                raise ConfigError(str(err).replace("model.arch.", "arch.")) from None
            find_vllm(VllmConfig())
            return choice
        try:
            check_servable(arch, "demo")
            find_vllm(VllmConfig())
        except ConfigError:
            return "transformers"
        return "vllm"

    # the run ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        from agentkit.synth.demo.report import build_report, print_results, write_report

        cfg = self.cfg
        check_config(cfg)
        engine = self.served_by = self.engine()
        self.out.mkdir(parents=True, exist_ok=True)
        jobs = list(self.synth_jobs())
        loop_families = (
            [n for n, f in cfg.families.items() if f.mid or f.sft]
            if cfg.loop.arm != "none" and cfg.loop.tasks
            else []
        )
        arms = self.arms()
        total = (
            1
            + len(jobs)
            + 1
            + 2
            + len(arms)
            + (len(arms) - 1)
            + (len(self.likelihood_models()) if cfg.eval.aptbench else 0)
            + len(self.models()) * len(cfg.families)
            + len(loop_families)
        )
        runner = Runner(self.out, cfg.resume, total)
        started = time.perf_counter()
        runner.console.print(
            f"[bold]agentkit demo[/bold] -> {self.out}  (seed {self.seed}, arms {', '.join(arms)}, "
            f"engine {engine}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})"
        )

        corpus = self.path("data", "drills.jsonl")
        runner.step(
            "drills",
            "generate the pre-training drills (copying, maths as code, JSON lookup)",
            f"# {cfg.corpus.drills} drill documents, seed {self.seed} -> {corpus}",
            lambda: write_texts(corpus, drill_corpus(cfg.corpus.drills, self.seed)),
            corpus,
        )
        what = {"mid": "mid-training", "sft": "SFT", "heldout": "held-out (likelihood items)"}
        for split, family, kind, n in jobs:
            args = self.synth_args(split, family, kind, n)
            solver = (
                "teacher: a mistake that runs, its observation and the fix"
                if kind == "teacher"
                else "reference"
            )
            runner.step(
                f"synth-{split}-{family}-{kind}",
                f"{what[split]} trajectories: {family} ({solver})",
                shown(args),
                lambda a=args: run_agentkit(a),
                self.synth_dir(split, family, kind) / "manifest.json",
            )
        rendered = self.path("data", "trajectories.rendered.jsonl")
        runner.step(
            "render",
            "render the training trajectories with the chat template (tokenizer training text)",
            f"# {self.data_glob('mid')} {self.data_glob('sft')} -> {rendered}",
            lambda: write_texts(
                rendered, rendered_trajectories(self.data_glob("mid"), self.data_glob("sft"))
            ),
            rendered,
        )
        # Mid-training before any SFT: a rerun that changes only the SFT (its data, steps, learning rate) reuses
        # the mid-trained checkpoints, the longest steps, since each step is reused only if all before it are.
        train_steps: list[tuple[str, str, list[str], Path]] = [
            ("tokenizer", TITLES["tokenizer"], self.tokenizer_args(), self.path("tokenizer")),
            ("pretrain", TITLES["pretrain"], self.pretrain_args(), self.ckpt("pretrain")),
        ]
        for arm in arms[1:]:
            train_steps.append(
                (
                    f"mid-{arm}",
                    f"arm {arm}: agentic mid-training, {self.mid_steps(arm)} steps on the trajectory mix",
                    self.midtrain_args(arm),
                    self.ckpt(f"mid-{arm}"),
                )
            )
        train_steps.append(
            ("sft-A", "arm A: SFT only, from the pre-trained checkpoint", self.sft_args("A"), self.ckpt("A"))
        )
        for arm in arms[1:]:
            train_steps.append(
                (f"sft-{arm}", f"arm {arm}: the same SFT, from mid-{arm}", self.sft_args(arm), self.ckpt(arm))
            )
        for name, title, args, folder in train_steps:
            marker = "tokenizer_report.json" if name == "tokenizer" else "train_report.json"
            runner.step(name, title, shown(args), lambda a=args: run_agentkit(a), folder / marker)
        if cfg.eval.aptbench:
            for model in self.likelihood_models():
                args = self.aptbench_args(model)
                runner.step(
                    f"aptbench-{model}",
                    f"score {model} by likelihood on items from held-out trajectories (APTBench-style)",
                    shown(args),
                    lambda a=args: run_agentkit(a),
                    self.path("aptbench", model, "aptbench.json"),
                )
        loop_model = cfg.loop.arm
        for model in self.models():
            self.serve_and_evaluate(runner, model, loop_families if model == loop_model else [])
        report = build_report(self, runner.records, time.perf_counter() - started, engine)
        write_report(self, report)
        print_results(runner.console, report)
        return 0

    @contextlib.contextmanager
    def _server(self, model: str, runner: Runner) -> Iterator[str]:
        from agentkit.config import ModelConfig
        from agentkit.server.launch import embedded_server, vllm_server

        runner.console.print(
            f"[bold]serving {model}:[/bold] {shown(self.serve_args(model, self.served_by))}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        log = self.path("logs", f"serve-{model}.log")
        if self.served_by == "vllm":
            with vllm_server(self.ckpt(model), log_path=log, served_model_name=model) as url:
                yield url
            return
        spec = ModelConfig(name=model, path=str(self.ckpt(model)))
        with embedded_server(
            spec, max_batch_size=self.cfg.eval.max_batch_size, log_path=log, extra=self.serve_overrides()
        ) as url:
            yield url

    def serve_and_evaluate(self, runner: Runner, model: str, loop_families: list[str]) -> None:
        """Evaluate ``model`` on every family (and run the loop), starting its server only if a step must run."""
        state: dict[str, Any] = {"url": None, "stack": contextlib.ExitStack()}
        placeholder = "http://127.0.0.1:PORT/v1"

        def url() -> str:
            if state["url"] is None:
                state["url"] = state["stack"].enter_context(self._server(model, runner))
            return state["url"]

        with state["stack"]:
            for family in self.cfg.families:
                runner.step(
                    f"eval-{model}-{family}",
                    f"evaluate {model} on held-out {family} tasks",
                    shown(self.eval_args(model, family, placeholder)),
                    lambda f=family: run_agentkit(self.eval_args(model, f, url())),
                    self.path("eval", model, family, "report.json"),
                )
            for family in loop_families:
                runner.step(
                    f"loop-{family}",
                    f"{model} synthesizes new verified {family} trajectories",
                    shown(self.loop_args(model, family, placeholder)),
                    lambda f=family: run_agentkit(self.loop_args(model, f, url())),
                    self.path("loop", family, "manifest.json"),
                )


def demo(cfg: DemoConfig) -> int:
    """``agentkit demo``: the agentic mid-training ablation (A = SFT only, B = mid-training + the same SFT)."""
    import signal

    def stop(signum, _frame):  # unwind, so the running step's subprocess and the server are stopped too
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    return Demo(cfg).run()
