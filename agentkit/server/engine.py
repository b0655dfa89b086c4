"""Batched generation over any HF causal LM, and ``TransformersClient``, the in-process model client.

Requests from many callers queue up; one thread takes up to ``max_batch_size`` rows at a time and
runs them through a single ``generate`` call with left padding. Each row keeps its own sampling
parameters (a logits processor samples row by row with the row's own seeded generator) and stops on
its own (EOS, stop strings, its own ``max_tokens``), so unrelated requests share a batch safely.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.client import Completion, Sampling, completion_from_text
from agentkit.errors import ConfigError, ContextExceeded, ModelError
from agentkit.records import Message, ToolSpec

log = logging.getLogger("agentkit.server")

_INSTALL_HINT = "the transformers engine needs torch and transformers: pip install torch transformers"


@dataclass
class GenerationRequest:
    """One row of a batch: a tokenized prompt and how to continue it."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    top_k: int = 0
    """0 (or less) means no top-k cut."""
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    min_tokens: int = 0
    """EOS cannot be chosen before this many tokens."""
    ignore_eos: bool = False
    """EOS is never chosen: the row runs to ``max_tokens`` (benchmarks)."""
    on_token: Callable[[int], object] | None = field(default=None, repr=False, compare=False)
    """Called from the generation thread with each token id as it is chosen (streaming); it must not
    block. The final ``GenerationResult`` stays the authority on text, stop strings and finish reason."""


@dataclass
class GenerationResult:
    text: str
    """Decoded completion, EOS and anything from a stop string on removed."""
    token_ids: list[int]
    """Every generated token, EOS included (what the model must learn to emit)."""
    finish_reason: str
    """``stop`` (EOS or a stop string) or ``length``."""
    prompt_tokens: int
    logprobs: list[float] | None = None
    """Log-probability of each generated token under the raw model distribution."""
    top_logprobs: list[list[tuple[int, float]]] | None = None
    stop_string: str | None = None


@dataclass
class EngineStats:
    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    generated_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Row:
    __slots__ = ("request", "future", "generated", "logprobs", "top", "finish", "stop_string", "generator")

    def __init__(self, request: GenerationRequest, future: concurrent.futures.Future):
        self.request = request
        self.future = future
        self.generated: list[int] = []
        self.logprobs: list[float] = []
        self.top: list[list[tuple[int, float]]] = []
        self.finish: str | None = None
        self.stop_string: str | None = None
        self.generator: Any = None


class _BatchSampler:
    """A logits processor that picks each row's next token itself (per-row temperature, top-k,
    top-p, penalties, seed) and forces ``generate``'s greedy step onto it; plus the per-row stopping
    criterion. Finished rows are skipped (``generate`` pads them)."""

    def __init__(
        self, rows: list[_Row], tokenizer, eos_ids: set[int], prompt_len: int, device, abort: threading.Event
    ):
        import torch

        self.rows = rows
        self.abort = abort
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.prompt_len = prompt_len
        requests = [r.request for r in rows]
        as_col = lambda values: torch.tensor(values, dtype=torch.float32, device=device)[:, None]  # noqa: E731
        self.temperature = as_col([max(q.temperature, 1e-5) for q in requests])
        self.greedy = torch.tensor([q.temperature <= 0 or q.top_k == 1 for q in requests], device=device)
        self.top_p = as_col([q.top_p for q in requests])
        top_k = [q.top_k if q.top_k > 0 else 0 for q in requests]
        self.max_k = max(top_k)
        self.k_index = torch.tensor([max(k, 1) - 1 for k in top_k], device=device)[:, None]
        self.k_index_used = torch.tensor([k > 0 for k in top_k], device=device)[:, None]
        self.rep = as_col([q.repetition_penalty for q in requests])
        self.presence = as_col([q.presence_penalty for q in requests])
        self.frequency = as_col([q.frequency_penalty for q in requests])
        self.use_rep = any(q.repetition_penalty != 1.0 for q in requests)
        self.use_counts = any(q.presence_penalty or q.frequency_penalty for q in requests)
        self.want_logprobs = any(q.logprobs for q in requests)
        self.use_top_p = any(q.top_p < 1.0 for q in requests)
        self.eos_index = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
        self.hold_eos = any(q.ignore_eos or q.min_tokens for q in requests)
        self.stop_window = max((len(s) for q in requests for s in q.stop), default=0) + 4
        for row in rows:
            generator = torch.Generator(device=device)
            if row.request.seed is not None:
                generator.manual_seed(row.request.seed)
            else:
                generator.seed()
            row.generator = generator

    # -- logits processor -------------------------------------------------------------------------
    def __call__(self, input_ids, scores):
        import torch

        active = [i for i, row in enumerate(self.rows) if row.finish is None]
        raw = scores.float()
        logits = raw
        if self.use_rep:
            present = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, input_ids, True)
            penalised = torch.where(logits > 0, logits / self.rep, logits * self.rep)
            logits = torch.where(present, penalised, logits)
        if self.use_counts:
            generated = input_ids[:, self.prompt_len :]
            counts = torch.zeros_like(logits).scatter_add_(
                1, generated, torch.ones_like(generated, dtype=logits.dtype)
            )
            logits = logits - self.frequency * counts - self.presence * (counts > 0).to(logits.dtype)
        if self.hold_eos:
            held = [
                i
                for i in active
                if self.rows[i].request.ignore_eos
                or len(self.rows[i].generated) < self.rows[i].request.min_tokens
            ]
            if held:
                logits = logits.clone() if logits is raw else logits
                logits[torch.tensor(held, device=logits.device)[:, None], self.eos_index[None, :]] = float(
                    "-inf"
                )
        logits = logits / self.temperature
        if self.max_k:
            top = torch.topk(logits, min(self.max_k, logits.shape[-1]), dim=-1).values
            kth = top.gather(1, self.k_index.clamp(max=top.shape[-1] - 1))
            kth = torch.where(self.k_index_used, kth, torch.full_like(kth, float("-inf")))
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.use_top_p:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            sorted_probs = sorted_logits.softmax(-1)
            cut = (sorted_probs.cumsum(-1) - sorted_probs) > self.top_p
            cut[:, 0] = False
            logits = logits.masked_fill(cut.scatter(1, order, cut), float("-inf"))
        probs = logits.softmax(-1)
        cdf = probs.cumsum(-1)
        uniform = torch.stack(
            [
                torch.rand((), generator=self.rows[i].generator, device=logits.device)
                if i in active
                else torch.zeros((), device=logits.device)
                for i in range(len(self.rows))
            ]
        )
        sampled = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).squeeze(1)
        sampled = sampled.clamp_(max=logits.shape[-1] - 1)
        chosen = torch.where(self.greedy, logits.argmax(-1), sampled)
        raw_logprobs = raw.log_softmax(-1) if self.want_logprobs else None
        chosen_list = chosen.tolist()
        for i in active:
            row = self.rows[i]
            row.generated.append(chosen_list[i])
            if row.request.on_token is not None:
                try:
                    row.request.on_token(chosen_list[i])
                except Exception:  # a gone listener must not stop the batch
                    log.debug("on_token listener failed", exc_info=True)
            if row.request.logprobs and raw_logprobs is not None:
                row.logprobs.append(float(raw_logprobs[i, chosen_list[i]]))
                if row.request.top_logprobs:
                    values, ids = torch.topk(raw_logprobs[i], row.request.top_logprobs)
                    row.top.append(list(zip(ids.tolist(), values.tolist(), strict=True)))
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, chosen[:, None], 0.0)
        return forced

    # -- stopping criterion -----------------------------------------------------------------------
    def stopped(self, input_ids, scores, **kwargs):
        import torch

        if self.abort.is_set():
            return torch.ones(len(self.rows), dtype=torch.bool, device=input_ids.device)
        for row in self.rows:
            if row.finish is not None:
                continue
            request = row.request
            if row.generated and row.generated[-1] in self.eos_ids:
                row.finish = "stop"
            elif request.stop and self._hit_stop(row):
                row.finish = "stop"
            elif len(row.generated) >= request.max_tokens:
                row.finish = "length"
        return torch.tensor([row.finish is not None for row in self.rows], device=input_ids.device)

    def _hit_stop(self, row: _Row) -> bool:
        tail = self.tokenizer.decode(row.generated[-self.stop_window :], skip_special_tokens=True)
        for stop in row.request.stop:
            if stop in tail:
                row.stop_string = stop
                return True
        return False


def _torch_dtype(name: str):
    import torch

    if name == "auto":
        return "auto"
    try:
        dtype = getattr(torch, name)
    except AttributeError:
        dtype = None
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype: unknown torch dtype '{name}' (float32, bfloat16, float16 or auto)")
    return dtype


class GenerationEngine:
    """Owns a model and a tokenizer; batches queued requests in a background thread."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        name: str = "model",
        max_batch_size: int = 8,
        batch_wait_ms: float = 20.0,
        max_model_len: int | None = None,
        chat_template: str | None = None,
    ):
        from agentkit.chat_template import YOUTU_CHAT_TEMPLATE, template_sha256

        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max_batch_size
        self.batch_wait = max(0.0, batch_wait_ms) / 1000.0
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None) or YOUTU_CHAT_TEMPLATE
        self.chat_template_sha256 = template_sha256(self.chat_template)
        config_len = getattr(model.config, "max_position_embeddings", None)
        self.max_model_len = int(max_model_len or config_len or getattr(tokenizer, "model_max_length", 4096))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in [*eos, tokenizer.eos_token_id] if e is not None}
        if self.pad_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an EOS token; cannot batch")
        self.stats = EngineStats()
        self._queue: queue.Queue[_Row | None] = queue.Queue()
        self._closed = False
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentkit-generate", daemon=True)
        self._thread.start()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32", **kwargs: Any
    ) -> GenerationEngine:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(_INSTALL_HINT) from exc

        path = Path(path)
        if not (path / "config.json").exists():
            raise ConfigError(f"model.path: {path} is not a Hugging Face checkpoint (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=_torch_dtype(dtype))
        model.to(torch.device(device)).eval()
        kwargs.setdefault("name", path.name)
        return cls(model, tokenizer, **kwargs)

    # -- prompts -----------------------------------------------------------------------------------
    def render(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> str:
        """The generation prompt for an OpenAI-format conversation, through the chat template."""
        return self.tokenizer.apply_chat_template(
            list(messages),
            tools=list(tools) if tools else None,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode_token(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def check_context(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """The number of tokens to generate; raises ContextExceeded when they do not fit."""
        room = self.max_model_len - prompt_tokens
        if max_tokens is None:
            if room > 0:
                return room
            max_tokens = 1
        if max_tokens > room:
            raise ContextExceeded(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} in the "
                "completion). Please reduce the length of the prompt or of max_tokens."
            )
        return max_tokens

    # -- generation --------------------------------------------------------------------------------
    def submit(self, requests: Sequence[GenerationRequest]) -> list[concurrent.futures.Future]:
        """Queue rows for generation; each future resolves to a ``GenerationResult``."""
        if self._closed:
            raise ModelError("the generation engine is closed")
        futures = []
        for request in requests:
            if request.max_tokens < 1:
                raise ValueError("max_tokens must be >= 1")
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._queue.put(_Row(request, future))
            futures.append(future)
        return futures

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        futures = self.submit(requests)
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def close(self) -> None:
        """Stop taking requests, end the running batch early (its callers get ModelError) and join."""
        if not self._closed:
            self._closed = True
            self._abort.set()
            self._queue.put(None)
            self._thread.join(timeout=30)

    def __enter__(self) -> GenerationEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _take_batch(self) -> list[_Row] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                break
            rows = [row for row in batch if row.future.set_running_or_notify_cancel()]
            if not rows:
                continue
            try:
                results = self._run(rows)
            except ModelError as exc:
                for row in rows:
                    row.future.set_exception(exc)
                continue
            except Exception as exc:  # reported to each waiting caller
                log.exception("generation failed for a batch of %d", len(rows))
                for row in rows:
                    row.future.set_exception(ModelError(f"generation failed: {type(exc).__name__}: {exc}"))
                continue
            for row, result in zip(rows, results, strict=True):
                row.future.set_result(result)
        while not self._queue.empty():
            row = self._queue.get_nowait()
            if row is not None and row.future.set_running_or_notify_cancel():
                row.future.set_exception(ModelError("the generation engine was closed"))

    def _run(self, rows: list[_Row]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        device = self.model.device
        width = max(len(r.request.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids = row.request.prompt_ids
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids) :] = 1
        sampler = _BatchSampler(rows, self.tokenizer, self.eos_ids, width, device, self._abort)
        # Everything generate() could add on its own is switched off: the sampler decides each token.
        config = GenerationConfig(
            max_new_tokens=max(r.request.max_tokens for r in rows),
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            min_new_tokens=0,
            no_repeat_ngram_size=0,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            use_cache=getattr(self.model.generation_config, "use_cache", True),
        )
        with torch.inference_mode():
            self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([_per_row_stop(sampler)]),
            )
        if self._abort.is_set():
            raise ModelError("the generation engine was closed during generation")
        self.stats.batches += 1
        self.stats.rows += len(rows)
        self.stats.largest_batch = max(self.stats.largest_batch, len(rows))
        results = []
        for row in rows:
            self.stats.generated_tokens += len(row.generated)
            results.append(self._result(row))
        return results

    def _result(self, row: _Row) -> GenerationResult:
        ids = row.generated
        text_ids = ids[:-1] if ids and ids[-1] in self.eos_ids else ids
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        finish = row.finish or "length"
        stop_string = None
        if row.request.stop:
            cuts = [(text.find(s), s) for s in row.request.stop if s in text]
            if cuts:
                position, stop_string = min(cuts)
                text, finish = text[:position], "stop"
        return GenerationResult(
            text=text,
            token_ids=list(ids),
            finish_reason=finish,
            prompt_tokens=len(row.request.prompt_ids),
            logprobs=list(row.logprobs) if row.request.logprobs else None,
            top_logprobs=list(row.top) if row.request.logprobs and row.request.top_logprobs else None,
            stop_string=stop_string,
        )


def _per_row_stop(sampler: _BatchSampler):
    """The sampler's stopping check as the ``StoppingCriteria`` instance transformers expects."""
    from transformers import StoppingCriteria

    class PerRowStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return sampler.stopped(input_ids, scores, **kwargs)

    return PerRowStop()


def request_from_sampling(
    prompt_ids: list[int], sampling: Sampling, max_tokens: int, *, logprobs: bool = False
) -> GenerationRequest:
    return GenerationRequest(
        prompt_ids=prompt_ids,
        max_tokens=max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k or 0,
        repetition_penalty=sampling.repetition_penalty or 1.0,
        stop=tuple(sampling.stop or ()),
        seed=sampling.seed,
        logprobs=logprobs,
    )


def message_dicts(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as the chat template reads them (OpenAI JSON, string tool-call arguments)."""
    return [m.model_dump(exclude_none=True) for m in messages]


class TransformersClient:
    """A ``ModelClient`` that runs an HF causal LM in this process, batching concurrent calls.

    ``TransformersClient("path/to/ckpt")``, or ``TransformersClient.from_config(model_config)`` which
    materializes a tiny architecture when the config has no path. No server, no HTTP.
    """

    endpoint_kind = "transformers"

    def __init__(
        self,
        model: str | Path | GenerationEngine,
        *,
        name: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch_size: int = 8,
        batch_wait_ms: float = 20.0,
        max_model_len: int | None = None,
        return_token_ids: bool = False,
    ):
        if isinstance(model, GenerationEngine):
            self.engine = model
            self._owns_engine = False
        else:
            self.engine = GenerationEngine.from_pretrained(
                model,
                device=device,
                dtype=dtype,
                max_batch_size=max_batch_size,
                batch_wait_ms=batch_wait_ms,
                max_model_len=max_model_len,
            )
            self._owns_engine = True
        self.name = name or self.engine.name
        self.return_token_ids = return_token_ids

    @classmethod
    def from_config(cls, model, **kwargs: Any) -> TransformersClient:
        """From an ``agentkit.config.ModelConfig``."""
        from agentkit.server.launch import resolve_model_path

        return cls(resolve_model_path(model), name=kwargs.pop("name", model.name), **kwargs)

    @property
    def chat_template_sha256(self) -> str:
        return self.engine.chat_template_sha256

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        sampling: Sampling | None = None,
    ) -> Completion:
        sampling = sampling or Sampling()
        started = time.perf_counter()
        tool_dicts = [t.model_dump(exclude_none=True) for t in tools] if tools else None
        prompt_ids = self.engine.encode(self.engine.render(message_dicts(messages), tool_dicts))
        max_tokens = self.engine.check_context(len(prompt_ids), sampling.max_tokens)
        request = request_from_sampling(prompt_ids, sampling, max_tokens, logprobs=self.return_token_ids)
        (result,) = await self.engine.generate([request])
        previous_calls = sum(len(m.tool_calls or []) for m in messages if m.role == "assistant")
        completion = completion_from_text(
            result.text,
            finish_reason=result.finish_reason,
            start=previous_calls,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=len(result.token_ids),
            model=self.name,
            latency=time.perf_counter() - started,
        )
        if completion.message.tool_calls and result.finish_reason == "stop":
            completion.finish_reason = "tool_calls"
        if self.return_token_ids:
            completion.token_ids = result.token_ids
            completion.logprobs = result.logprobs
        return completion

    async def health(self) -> bool:
        return not self.engine._closed

    async def aclose(self) -> None:
        if self._owns_engine:
            await asyncio.to_thread(self.engine.close)


__all__ = [
    "EngineStats",
    "GenerationEngine",
    "GenerationRequest",
    "GenerationResult",
    "TransformersClient",
    "message_dicts",
    "request_from_sampling",
]
