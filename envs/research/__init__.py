"""The deep-research environment: search and read over a local corpus, multi-hop questions with exact
answers, verified by normalized exact match and token F1.

Tasks come from the fictional encyclopedia (``tasks.source=generated``: a corpus and its BM25 index
are built once into a cache, deterministic for the seed) or from a user's question file
(``jsonl``/``parquet``/``hf``) over a user's corpus or index. The tools are ``search``, ``open`` and
``find``; the reference policy follows each question's recorded evidence chain with those tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.client import ModelClient
from agentkit.env import Env, Episode, Tool
from agentkit.envs.prompts import agent_prompt
from agentkit.envs.research.index import SearchIndex
from agentkit.envs.research.sources import GENERATED, default_cache_dir, ensure_generated, resolve_index
from agentkit.envs.research.tools import DESCRIPTIONS, ResearchTools, ToolLimits, tool_parameters
from agentkit.envs.research.verify import VERIFIER, verify_answer
from agentkit.errors import ConfigError, VerifierError
from agentkit.records import FunctionSpec, Message, Task, ToolSpec, Verdict
from agentkit.registry import ENVS

if TYPE_CHECKING:
    from agentkit.config import SandboxConfig, TaskSourceConfig

__all__ = ["ResearchEnv", "ResearchEpisode", "RESEARCH_PROMPT"]

RESEARCH_PROMPT = agent_prompt("""
You answer questions by researching a document collection; every fact you use must come from a document
you have read, not from memory. Tools: search(query, k) ranks documents and shows snippets with offsets;
open(id, offset) reads one page of a document; find(id, pattern) shows where a phrase occurs in one.
In research, Plan splits the question into the facts it needs, one hop at a time; Action is Search, then
Read (open the documents and quote the sentence that states each fact); Reflection is Cross-check (every
step of the answer is supported by what you read); the Summary ends with the Answer.
End with the answer alone inside <answer>...</answer>: a name, a year or a number.""")

GENERATED_OPTIONS = {"docs", "corpus_seed", "hops", "types", "progress"}
FILE_OPTIONS = {"index", "corpus", "hf_split"}


class ResearchEpisode(Episode):
    def __init__(self, task: Task, tools: ResearchTools, require_evidence: bool):
        super().__init__(task)
        self._tools = tools.as_tools()
        self.require_evidence = require_evidence

    @property
    def tools(self) -> list[Tool]:
        return self._tools

    async def verify(self, messages: Sequence[Message]) -> Verdict:
        if "answer" not in self.task.meta:
            raise VerifierError(f"task '{self.task.id}' has no reference answer in meta")
        verdict = verify_answer(messages, self.task.meta, require_evidence=self.require_evidence)
        verdict.details["verifier"] = VERIFIER
        return verdict

    def feedback(self, verdict: Verdict) -> str:
        prediction = verdict.details.get("prediction")
        if prediction is None:
            return "Your reply has no final answer. Finish with the answer alone inside <answer>...</answer>."
        return (
            f"Your answer {prediction!r} was checked and it is not correct. Re-check each step: search again, "
            "open the documents that state each fact and quote them before answering."
        )


@ENVS.register("research")
class ResearchEnv(Env):
    """Search/open/find over a BM25-indexed corpus; exact-match answers to multi-hop questions."""

    name = "research"
    version = "1"
    system_prompt = RESEARCH_PROMPT

    def __init__(
        self,
        sandbox: SandboxConfig | None = None,
        *,
        corpus: str | None = None,
        index: str | None = None,
        cache_dir: str | None = None,
        page_chars: int = 1500,
        snippet_chars: int = 240,
        max_results: int = 10,
        require_evidence: bool = False,
        progress: bool = True,
    ):
        super().__init__(sandbox)
        if corpus and index:
            raise ConfigError(
                "env.options: give either corpus (a file, indexed into the cache) or index "
                "(a directory built by `agentkit index`), not both"
            )
        if page_chars < 200 or snippet_chars < 40 or max_results < 1:
            raise ConfigError(
                "env.options: page_chars >= 200, snippet_chars >= 40 and max_results >= 1 are needed"
            )
        self.corpus, self.index = corpus, index
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.limits = ToolLimits(
            page_chars=page_chars,
            snippet_chars=snippet_chars,
            max_results=max_results,
            default_results=min(5, max_results),
        )
        self.require_evidence = require_evidence
        self.progress = progress
        self._indexes: dict[str, SearchIndex] = {}
        self._paths: dict[str, Path] = {}

    # -- indexes ------------------------------------------------------------------------------------

    def default_index_ref(self) -> str | None:
        ref = self.index or self.corpus
        return str(Path(ref).expanduser().resolve()) if ref else None

    def index_path(self, ref: str) -> Path:
        if ref not in self._paths:
            self._paths[ref] = resolve_index(ref, self.cache_dir, progress=self.progress)
        return self._paths[ref]

    def search_index(self, task: Task) -> SearchIndex:
        ref = task.meta.get("index") or self.default_index_ref()
        if not ref:
            raise ConfigError(f"task '{task.id}' names no index and env.options has neither index nor corpus")
        if ref not in self._indexes:
            self._indexes[ref] = SearchIndex(self.index_path(ref))
        return self._indexes[ref]

    # -- env protocol ---------------------------------------------------------------------------

    def tools(self, task: Task) -> list[ToolSpec]:
        parameters = tool_parameters(self.limits)
        return [
            ToolSpec(
                function=FunctionSpec(name=name, description=DESCRIPTIONS[name], parameters=parameters[name])
            )
            for name in ("search", "open", "find")
        ]

    async def open(self, task: Task) -> Episode:
        return ResearchEpisode(
            task, ResearchTools(self.search_index(task), self.limits), self.require_evidence
        )

    def reference_solver(self, task: Task) -> ModelClient | None:
        from agentkit.envs.research.solver import chain_solver, evidence_solver

        evidence = task.meta.get("evidence") or []
        chain_keys = {"query", "value", "offset", "sentence"}
        if evidence and all(isinstance(s, dict) and chain_keys <= set(s) for s in evidence):
            return chain_solver(task, self.limits.page_chars)
        if evidence:
            index = self.search_index(task)
            docs = [s["doc"] if isinstance(s, dict) else str(s) for s in evidence]
            return evidence_solver(task, {d: doc.title for d in docs if (doc := index.get(d)) is not None})
        return None

    def load_tasks(self, source: TaskSourceConfig) -> list[Task]:
        if source.source == "generated":
            return self._generated_tasks(source)
        if source.source in ("jsonl", "parquet", "hf"):
            return self._file_tasks(source)
        raise ConfigError(
            f"tasks.source '{source.source}' is not one of generated, jsonl, parquet, hf for env 'research'"
        )

    async def aclose(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()

    # -- task sources ---------------------------------------------------------------------------

    def _generated_tasks(self, source: TaskSourceConfig) -> list[Task]:
        from agentkit.envs.research.questions import buckets, make_question
        from agentkit.envs.tasks import check_split, check_task_options, in_split

        options = dict(source.options)
        check_task_options(options, GENERATED_OPTIONS, "generated research task")
        docs = _int_option(options, "docs", 2000)
        if docs < 200:
            raise ConfigError(f"tasks.options.docs must be >= 200, not {docs}")
        corpus_seed = _int_option(options, "corpus_seed", 0)
        kinds = buckets(
            list(options.get("hops", [1, 2, 3])), list(options.get("types", ["bridge", "comparison"]))
        )
        check_split(source)
        enc, path = ensure_generated(
            docs, corpus_seed, self.cache_dir, progress=bool(options.get("progress", self.progress))
        )
        ref = GENERATED + enc.key
        self._paths[ref] = path
        n = 100 if source.n is None else source.n
        tasks: list[Task] = []
        seen: set[str] = set()
        index = 0
        while len(tasks) < n:
            if index >= max(n, 1) * 50:
                raise ConfigError(
                    f"tasks: could not generate {n} distinct questions from {enc.key} in split "
                    f"'{source.split}' (raise tasks.options.docs)"
                )
            task = make_question(enc, index, seed=source.seed, kinds=kinds, index_ref=ref)
            index += 1
            if task.prompt in seen or not in_split(task.id, source):
                continue
            seen.add(task.prompt)
            tasks.append(task)
        return tasks

    def _file_tasks(self, source: TaskSourceConfig) -> list[Task]:
        from agentkit.envs.tasks import check_task_options, load_task_rows

        options = dict(source.options)
        check_task_options(options, FILE_OPTIONS, "research question file")
        ref = options.get("index") or options.get("corpus")
        if ref and not str(ref).startswith(GENERATED):
            ref = str(Path(ref).expanduser().resolve())
        ref = ref or self.default_index_ref()
        if not ref:
            raise ConfigError(
                "research question files need a corpus: set env.options.index (a directory built by "
                "`agentkit index`) or env.options.corpus, or tasks.options.index"
            )
        if ref not in self._indexes:
            self._indexes[ref] = SearchIndex(self.index_path(ref))
        index = self._indexes[ref]

        def check(task: Task) -> None:
            _check_question(task, index, ref)

        return load_task_rows(source, self.name, required=("prompt", "answer"), check=check)


def _int_option(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"tasks.options.{key} must be an integer, not {value!r}")
    return value


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{what} must be a string or a number, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} is empty")
    return text


def _check_question(task: Task, index: SearchIndex, ref: str) -> None:
    """Normalize a user's question row in place: answer text, alias list, evidence ids that exist."""
    meta = task.meta
    answer = meta["answer"]
    aliases = list(meta.get("aliases") or [])
    if isinstance(answer, list):
        if not answer:
            raise ValueError("field 'answer' is an empty list")
        answer, aliases = answer[0], [*answer[1:], *aliases]
    meta["answer"] = _text(answer, "field 'answer'")
    if not isinstance(meta.get("aliases") or [], list):
        raise ValueError("field 'aliases' must be a list")
    meta["aliases"] = [_text(a, "an alias") for a in aliases]
    evidence = meta.get("evidence") or []
    if not isinstance(evidence, list):
        raise ValueError("field 'evidence' must be a list of document ids")
    steps = []
    for item in evidence:
        doc = item.get("doc") if isinstance(item, dict) else item
        doc = _text(doc, "an evidence document id")
        row = index.row_of(doc)
        if row is None or index.ids[row] != doc:
            raise ValueError(f"evidence document '{doc}' is not in the index {index.path}")
        steps.append({"doc": doc})
    meta["evidence"] = steps
    meta["index"] = ref
