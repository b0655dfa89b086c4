"""``OpenAIClient``: a ``ModelClient`` for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, the embedded one).

Several endpoints share the load: each request goes to the healthy endpoint with the fewest requests
in flight; an endpoint that fails is benched for a short, growing cool-down and probed again after
it. Connection errors, timeouts, 5xx and 429 are retried with exponential backoff and full jitter
(honouring ``Retry-After``), on another endpoint when there is one; other 4xx are the caller's error.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from agentkit.client import Completion, Sampling, completion_from_text
from agentkit.errors import ContextExceeded, ModelError
from agentkit.records import Message, ToolCall, ToolSpec
from agentkit.toolcalls import parse_tool_calls, render_tool_call

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CONTEXT = re.compile(
    r"context length|context window|context size|maximum (model |context )?length|"
    r"too many tokens|prompt is too long|input is too long|exceeds? the (available|max)",
    re.IGNORECASE,
)


@dataclass
class Endpoint:
    base_url: str
    in_flight: int = 0
    failures: int = 0
    benched_until: float = 0.0
    requests: int = 0

    @property
    def root(self) -> str:
        """The server root (``/health`` lives there, not under ``/v1``)."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def available(self, now: float) -> bool:
        return now >= self.benched_until

    def failed(self, now: float) -> None:
        self.failures += 1
        self.benched_until = now + min(30.0, 0.5 * 2 ** min(self.failures - 1, 6))

    def succeeded(self) -> None:
        self.failures = 0
        self.benched_until = 0.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def split_urls(base_urls: str | Sequence[str]) -> list[str]:
    items = base_urls.split(",") if isinstance(base_urls, str) else list(base_urls)
    urls = [u.strip().rstrip("/") for u in items if u and u.strip()]
    if not urls:
        raise ValueError("OpenAIClient needs at least one base URL")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    return urls


def message_json(message: Message) -> dict[str, Any]:
    """A message as OpenAI JSON: string tool-call arguments, no empty optional fields."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        if not message.content:
            out["content"] = None
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:2000]
    return str(error)[:2000]


class OpenAIClient:
    """Chat completions against one or more OpenAI-compatible endpoints."""

    endpoint_kind = "openai-compatible"

    def __init__(
        self,
        base_urls: str | list[str],
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_concurrency: int = 64,
        max_retries: int = 5,
        return_token_ids: bool | None = False,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        connect_timeout: float = 10.0,
    ):
        self.name = model
        self.model = model
        self.endpoints = [Endpoint(url) for url in split_urls(base_urls)]
        self.api_key = api_key
        self.timeout = timeout
        self.max_concurrency = max(1, max_concurrency)
        self.max_retries = max(0, max_retries)
        self.return_token_ids = return_token_ids
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.connect_timeout = min(connect_timeout, timeout)
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = 0

    @classmethod
    def from_config(cls, model, **kwargs: Any) -> OpenAIClient:
        """From an ``agentkit.config.ModelConfig`` with ``base_url`` set."""
        if not model.base_url:
            raise ValueError("model.base_url is not set")
        return cls(
            model.base_url,
            model.name,
            api_key=model.api_key,
            timeout=model.timeout,
            max_concurrency=model.max_concurrency,
            max_retries=model.max_retries,
            **kwargs,
        )

    # -- plumbing ----------------------------------------------------------------------------------
    def _client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._http is None or self._semaphore is None or self._loop is not loop:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(
                max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
            )
            self._http = httpx.AsyncClient(
                headers=headers,
                limits=limits,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._http, self._semaphore

    def _pick(self, avoid: Endpoint | None) -> Endpoint:
        """The least-loaded available endpoint (ties in turn); when all are benched, the first back."""
        now = time.monotonic()
        candidates = [e for e in self.endpoints if e.available(now)]
        if avoid is not None and len(candidates) > 1:
            candidates = [e for e in candidates if e is not avoid] or candidates
        if not candidates:
            return min(self.endpoints, key=lambda e: e.benched_until)
        self._turn += 1
        least = min(e.in_flight for e in candidates)
        tied = [e for e in candidates if e.in_flight == least]
        return tied[self._turn % len(tied)]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        http, semaphore = self._client()
        async with semaphore:
            previous: Endpoint | None = None
            last_error = "no attempt made"
            for attempt in range(self.max_retries + 1):
                endpoint = self._pick(previous)
                endpoint.in_flight += 1
                endpoint.requests += 1
                try:
                    data = await self._once(http, endpoint, path, body)
                except _Retryable as exc:
                    endpoint.failed(time.monotonic())
                    last_error = f"{endpoint.base_url}: {exc}"
                    previous = endpoint
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._backoff(attempt, exc.retry_after))
                    continue
                finally:
                    endpoint.in_flight -= 1
                endpoint.succeeded()
                return data
            raise ModelError(
                f"model request failed after {self.max_retries + 1} attempts; last error: {last_error}"
            )

    async def _once(
        self, http: httpx.AsyncClient, endpoint: Endpoint, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await http.post(endpoint.base_url + path, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {exc})") from None
        if response.status_code in RETRY_STATUS:
            raise _Retryable(
                f"HTTP {response.status_code}: {_error_message(response)}", _retry_after(response)
            )
        if response.status_code >= 400:
            message = _error_message(response)
            if response.status_code in (400, 413) and _CONTEXT.search(message):
                raise ContextExceeded(message)
            raise ModelError(f"{endpoint.base_url}: HTTP {response.status_code}: {message}")
        try:
            data = response.json()
        except ValueError:
            raise _Retryable(f"HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise ModelError(f"{endpoint.base_url}: a response without choices: {str(data)[:300]}")
        return data

    # -- the ModelClient protocol ------------------------------------------------------------------
    def request_body(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] | None, sampling: Sampling
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_json(m) for m in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "n": 1,
        }
        if tools:
            body["tools"] = [t.model_dump(exclude_none=True) for t in tools]
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.top_k is not None:
            body["top_k"] = sampling.top_k
        if sampling.repetition_penalty is not None:
            body["repetition_penalty"] = sampling.repetition_penalty
        if self.return_token_ids:
            body.update(logprobs=True, return_token_ids=True)
        return body

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        sampling: Sampling | None = None,
    ) -> Completion:
        sampling = sampling or Sampling()
        if self.return_token_ids is None:  # auto: token-faithful records when the server is vLLM
            self.return_token_ids = await self._serves_vllm()
        started = time.perf_counter()
        data = await self._post("/chat/completions", self.request_body(messages, tools, sampling))
        previous_calls = sum(len(m.tool_calls or []) for m in messages if m.role == "assistant")
        completion = completion_from_response(data, start=previous_calls, check_tools=bool(tools))
        completion.latency = time.perf_counter() - started
        completion.model = completion.model or self.model
        return completion

    async def _serves_vllm(self) -> bool:
        """Whether the first endpoint is vLLM (its ``/models`` entries are ``owned_by: vllm``)."""
        http, _ = self._client()
        try:
            response = await http.get(self.endpoints[0].base_url + "/models", timeout=min(10.0, self.timeout))
            return any(e.get("owned_by") == "vllm" for e in response.json().get("data", []))
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    async def health(self) -> bool:
        """Probe every endpoint (``/health``, else ``/v1/models``); True when at least one answers."""
        http, _ = self._client()

        async def probe(endpoint: Endpoint) -> bool:
            for url in (endpoint.root + "/health", endpoint.base_url + "/models"):
                try:
                    response = await http.get(url, timeout=min(10.0, self.timeout))
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    endpoint.succeeded()
                    return True
            endpoint.failed(time.monotonic())
            return False

        return any(await asyncio.gather(*(probe(e) for e in self.endpoints)))

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            try:
                await http.aclose()
            except RuntimeError:  # its event loop is already closed
                pass


def _token_ids(choice: dict[str, Any]) -> list[int] | None:
    if isinstance(choice.get("token_ids"), list):
        return [int(t) for t in choice["token_ids"]]
    content = (choice.get("logprobs") or {}).get("content") or []
    ids = []
    for item in content:
        token = str(item.get("token", ""))
        if not token.startswith("token_id:"):
            return None
        ids.append(int(token.split(":", 1)[1]))
    return ids or None


def generated_text(choice: dict[str, Any]) -> str | None:
    """The completion exactly as generated: its tokens' text from the logprobs, when the server sent them
    (vLLM and the embedded server with ``logprobs``), else None."""
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    pieces = [item.get("token") for item in content]
    if not all(isinstance(p, str) and not p.startswith("token_id:") for p in pieces):
        return None
    return "".join(pieces)


def _call_key(name: str, arguments: str) -> tuple[str, Any]:
    try:
        return name, json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return name, arguments


def tool_calls_agree(server_calls: list[ToolCall] | list[dict[str, Any]], text: str) -> bool:
    """Whether the calls a server parsed (``ToolCall``s or the response's ``tool_calls`` JSON) equal agentkit's
    parse of the text it generated (names and decoded arguments, in order): a tool parser that drops, adds or
    alters a call is a disagreement."""
    theirs = []
    for call in server_calls:
        if isinstance(call, ToolCall):
            theirs.append(_call_key(call.name, call.function.arguments))
        else:
            function = call.get("function") or {}
            arguments = function.get("arguments", "{}")
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
            theirs.append(_call_key(str(function.get("name", "")), arguments))
    ours = [_call_key(c.name, c.function.arguments) for c in parse_tool_calls(text).tool_calls]
    return theirs == ours


def completion_from_response(
    data: dict[str, Any], *, start: int = 0, check_tools: bool = False
) -> Completion:
    """A ``Completion`` from a chat-completions response: the server's parsed ``tool_calls`` when it
    sent any (ids renumbered ``call_<n>`` across the conversation), else ``<tool_call>`` blocks parsed
    from the text. ``raw_text`` is the text as the chat template renders the turn; ``generated_text`` the
    text as generated, when the response carries its tokens. ``check_tools`` (tools were offered): compare
    the server's tool calls with agentkit's parse of ``generated_text`` (``tool_call_agreement``)."""
    choice = data["choices"][0]
    message = choice.get("message") or {}
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and "<think>" not in content:
        content = f"<think>{reasoning}</think>{content}"
    usage = data.get("usage") or {}
    finish = choice.get("finish_reason") or "stop"
    extra: dict[str, Any] = {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "model": str(data.get("model") or ""),
    }
    server_calls = message.get("tool_calls") or []
    if not server_calls:
        completion = completion_from_text(content, finish_reason=finish, start=start, **extra)
        if not completion.message.tool_calls and not completion.parse_errors:
            # A plain reply is kept as generated (the parser strips whitespace), so it re-renders to the same tokens.
            completion.message.content = content
    else:
        leftover = parse_tool_calls(content, start=start)  # blocks the server left in the text
        calls: list[ToolCall] = list(leftover.tool_calls)
        raw_parts = [content] if content else []
        for call in server_calls:
            function = call.get("function") or {}
            arguments = function.get("arguments", "{}")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            calls.append(
                ToolCall.make(f"call_{start + len(calls)}", str(function.get("name", "")), arguments)
            )
            try:
                raw_parts.append(render_tool_call(calls[-1].name, arguments))
            except ValueError:
                raw_parts.append(
                    f'<tool_call>{{"name": {json.dumps(calls[-1].name)}, "arguments": {arguments}}}'
                    "</tool_call>"
                )
        assistant = Message(role="assistant", content=leftover.content, tool_calls=calls)
        completion = Completion(
            message=assistant,
            raw_text="\n".join(raw_parts),
            finish_reason=finish,
            parse_errors=leftover.errors,
            **extra,
        )
    token_ids = _token_ids(choice)
    if token_ids is not None:
        completion.token_ids = token_ids
        content_logprobs = (choice.get("logprobs") or {}).get("content") or []
        completion.logprobs = [float(item.get("logprob", 0.0)) for item in content_logprobs] or None
    completion.generated_text = generated_text(choice)
    if check_tools and completion.generated_text is not None:
        completion.tool_call_agreement = tool_calls_agree(server_calls, completion.generated_text)
    return completion


def served_template_sha256(entry: dict[str, Any] | None) -> str | None:
    """The chat-template hash of a served model: the one the server advertises (agentkit's server), else the
    template in the checkpoint its ``root`` names (vLLM), when that directory is readable from here."""
    if not entry:
        return None
    if entry.get("chat_template_sha256"):
        return str(entry["chat_template_sha256"])
    root = entry.get("root")
    if not isinstance(root, str) or not root.startswith("/"):
        return None
    from pathlib import Path

    from agentkit.chat_template import template_sha256

    folder = Path(root)
    template = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "tokenizer_config.json").is_file():
        try:
            template = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get(
                "chat_template"
            )
        except ValueError:
            template = None
    return template_sha256(template) if isinstance(template, str) else None
