"""The OpenAI-compatible HTTP API over a ``GenerationEngine``: chat completions, completions, models, health.

Every bad request gets an OpenAI-style JSON error (``{"error": {"message", "type", "param", "code"}}``)
with a 4xx status; an unexpected failure is logged here and answered with a 500 JSON error, never a
traceback. Generation runs in the engine's thread, so ``/health`` answers while a batch is running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.errors import AgentkitError, ContextExceeded
from agentkit.server.engine import GenerationEngine, GenerationRequest, GenerationResult
from agentkit.server.stream import ChoiceStream, merge_rows, sse
from agentkit.toolcalls import CALL_OPEN, parse_tool_calls

log = logging.getLogger("agentkit.server")

# Accepted so that standard clients work; they do not change what is generated.
IGNORED_FIELDS = {"user", "parallel_tool_calls", "stream_options", "metadata", "store", "service_tier"}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# -- request bodies --------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionCallIn(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def as_template_dict(self) -> dict[str, Any]:
        if isinstance(self.content, list):
            kinds = {part.type for part in self.content} - {"text", "input_text"}
            if kinds:
                raise APIError(
                    400,
                    f"content parts of type {sorted(kinds)} are not supported (text only)",
                    param="messages",
                )
            content = "".join(part.text or "" for part in self.content)
        else:
            content = self.content or ""
        out: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": content,
        }
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for i, c in enumerate(self.tool_calls)
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


class FunctionIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolIn(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionIn


class SamplingBody(_Body):
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=64)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    stream: bool = False
    logit_bias: dict[str, float] | None = None
    return_token_ids: bool = False
    min_tokens: int = Field(default=0, ge=0)
    ignore_eos: bool = False

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops and any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return stops or None


class ChatRequest(SamplingBody):
    messages: list[ChatMessageIn] = Field(min_length=1)
    tools: list[ToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None


class CompletionRequest(SamplingBody):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


# -- helpers ---------------------------------------------------------------------------------------


def _unsupported(body: SamplingBody) -> None:
    if body.logit_bias:
        raise APIError(400, "logit_bias is not supported by this server", param="logit_bias")
    extra = sorted(set(body.model_extra or {}) - IGNORED_FIELDS)
    if extra:
        log.warning("ignoring unsupported request fields: %s", ", ".join(extra))


def _requests(
    body: SamplingBody,
    engine: GenerationEngine,
    prompt_ids: list[int],
    max_tokens: int | None,
    *,
    logprobs: bool,
    top_logprobs: int,
) -> list[GenerationRequest]:
    try:
        tokens = engine.check_context(len(prompt_ids), max_tokens)
    except ContextExceeded as exc:
        raise APIError(400, str(exc), param="messages", code="context_length_exceeded") from None
    rows = []
    for i in range(body.n):
        seed = body.seed + i if body.seed is not None else None
        rows.append(
            GenerationRequest(
                prompt_ids=prompt_ids,
                max_tokens=tokens,
                temperature=1.0 if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p,
                top_k=max(0, body.top_k or 0),
                repetition_penalty=body.repetition_penalty or 1.0,
                presence_penalty=body.presence_penalty,
                frequency_penalty=body.frequency_penalty,
                stop=tuple(body.stop or ()),
                seed=seed,
                logprobs=logprobs,
                top_logprobs=top_logprobs,
                min_tokens=min(body.min_tokens, tokens),
                ignore_eos=body.ignore_eos,
            )
        )
    return rows


def _usage(results: list[GenerationResult], prompt_tokens: int) -> dict[str, int]:
    completion = sum(len(r.token_ids) for r in results)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def _chat_logprobs(engine: GenerationEngine, result: GenerationResult) -> dict[str, Any] | None:
    if result.logprobs is None:
        return None
    content = []
    for i, (token_id, logprob) in enumerate(zip(result.token_ids, result.logprobs, strict=True)):
        token = engine.decode_token(token_id)
        top = [
            {"token": engine.decode_token(t), "logprob": lp, "bytes": list(engine.decode_token(t).encode())}
            for t, lp in (result.top_logprobs[i] if result.top_logprobs else [])
        ]
        content.append(
            {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": top}
        )
    return {"content": content}


def chat_choice(
    index: int, result: GenerationResult, *, parse_tools: bool, prefix: str = "", id_prefix: str | None = None
) -> dict[str, Any]:
    """One chat choice: tool calls parsed out of the generated text, and the matching finish reason.

    ``prefix`` is text the server put at the start of the assistant turn (a forced ``tool_choice``):
    it is part of what the model wrote. The parsed ``ToolCall`` objects are kept under ``"_calls"``.
    """
    text = prefix + result.text
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = result.finish_reason
    calls: list[Any] = []
    if parse_tools:
        parsed = parse_tool_calls(text, id_prefix=id_prefix or f"call_{uuid.uuid4().hex[:16]}")
        if parsed.tool_calls:
            calls = parsed.tool_calls
            message["content"] = parsed.content or None
            message["tool_calls"] = [call.model_dump() for call in parsed.tool_calls]
            if finish == "stop":
                finish = "tool_calls"
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None, "_calls": calls}


def forced_prefix(
    tool_choice: str | dict[str, Any] | None, tools: list[dict[str, Any]] | None, chat_template: str
) -> str:
    """The text that starts the assistant turn so that ``tool_choice`` is honoured ('' for auto/none).

    ``required`` opens a ``<tool_call>`` block (the model picks the function and writes the call);
    a named function also writes ``{"name": ..., "arguments":`` so only the arguments are left to the
    model. Anything the server cannot honour this way is a 400 naming ``tool_choice``.
    """
    if tool_choice in (None, "auto", "none"):
        return ""
    if isinstance(tool_choice, str) and tool_choice != "required":
        raise APIError(
            400,
            f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', "
            f"'function': {{'name': ...}}}}, got '{tool_choice}'",
            param="tool_choice",
        )
    if not tools:
        raise APIError(400, "tool_choice requires a call but the request has no tools", param="tool_choice")
    if CALL_OPEN not in chat_template:
        raise APIError(
            400,
            "tool_choice other than 'auto'/'none' needs a chat template that writes "
            f"{CALL_OPEN} blocks; this model's template does not",
            param="tool_choice",
        )
    if tool_choice == "required":
        return CALL_OPEN
    function = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if tool_choice.get("type") != "function" or not isinstance(name, str) or not name:
        raise APIError(
            400,
            "tool_choice as an object must be {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    offered = [t["function"]["name"] for t in tools]
    if name not in offered:
        raise APIError(
            400,
            f"tool_choice names function '{name}', which is not among the tools ({', '.join(offered)})",
            param="tool_choice",
        )
    # No space after the colon: BPE tokenizers glue it to the brace the model writes next.
    return CALL_OPEN + '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments":'


async def stream_chat(
    engine: GenerationEngine,
    rows: list[GenerationRequest],
    *,
    name: str,
    prefix: str,
    parse_tools: bool,
    include_usage: bool,
    prompt_tokens: int,
    return_token_ids: bool,
):
    """Server-sent ``chat.completion.chunk`` events for ``rows`` (one choice each), then ``[DONE]``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    for index, row in enumerate(rows):
        row.on_token = lambda token, index=index: loop.call_soon_threadsafe(
            queue.put_nowait, (index, token, None)
        )
    futures = engine.submit(rows)
    for index, future in enumerate(futures):
        future.add_done_callback(
            lambda f, index=index: loop.call_soon_threadsafe(queue.put_nowait, (index, None, f))
        )
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    id_prefix = f"call_{uuid.uuid4().hex[:16]}"
    streams = [
        ChoiceStream(
            i,
            lambda ids: engine.tokenizer.decode(ids, skip_special_tokens=True),
            prefix=prefix,
            parse_tools=parse_tools,
            stops=row.stop,
            eos_ids=engine.eos_ids,
            id_prefix=id_prefix,
        )
        for i, row in enumerate(rows)
    ]

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}
        return sse(
            {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [choice],
            }
        )

    completion_tokens = 0
    for index in range(len(rows)):
        yield chunk(index, {"role": "assistant", "content": ""})
    async for index, token, future in merge_rows(futures, queue):
        if token is not None:
            for delta in streams[index].feed(token):
                yield chunk(index, delta)
            continue
        try:
            result: GenerationResult = future.result()
        except AgentkitError as exc:
            log.warning("streamed generation failed: %s", exc)
            yield sse(APIError(500, f"generation failed: {exc}", type="server_error").body())
            yield sse("[DONE]")
            return
        completion_tokens += len(result.token_ids)
        final = chat_choice(index, result, parse_tools=parse_tools, prefix=prefix, id_prefix=id_prefix)
        for delta in streams[index].finish(final["message"], final["_calls"]):
            yield chunk(index, delta)
        extra = {"token_ids": result.token_ids} if return_token_ids else {}
        yield chunk(index, {}, final["finish_reason"], **extra)
    if include_usage:
        yield sse(
            {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )
    yield sse("[DONE]")


# -- the app ---------------------------------------------------------------------------------------


def create_app(engine: GenerationEngine, *, served_model_name: str | None = None, root: str | None = None):
    """The FastAPI app serving ``engine`` under ``served_model_name``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    name = served_model_name or engine.name
    accepted_names = {name, engine.name} | ({root} if root else set())
    created = int(time.time())
    app = FastAPI(title="agentkit embedded server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        if first.get("type") == "json_invalid":
            return JSONResponse(APIError(400, "the request body is not valid JSON").body(), status_code=400)
        param = ".".join(loc) or None
        if param is None:
            message = "the request body must be a JSON object (Content-Type: application/json)"
        else:
            message = f"{param}: {first.get('msg')}"
        return JSONResponse(APIError(400, message, param=param).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(APIError(exc.status_code, message, type=kind).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.error("request to %s failed", request.url.path, exc_info=exc)
        body = APIError(
            500, f"internal server error: {type(exc).__name__}: {exc}", type="server_error"
        ).body()
        return JSONResponse(body, status_code=500)

    def check_model(requested: str | None) -> None:
        if requested and requested not in accepted_names:
            raise APIError(
                404,
                f"The model `{requested}` does not exist; this server serves `{name}`.",
                type="not_found_error",
                param="model",
                code="model_not_found",
            )

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "stats": engine.stats.as_dict()}

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "agentkit",
                    "root": root or name,
                    "max_model_len": engine.max_model_len,
                    "chat_template_sha256": engine.chat_template_sha256,
                }
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        _unsupported(body)
        check_model(body.model)
        if body.response_format and body.response_format.get("type") not in (None, "text"):
            raise APIError(400, "response_format other than text is not supported", param="response_format")
        choice = body.tool_choice
        messages = [m.as_template_dict() for m in body.messages]
        tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None
        prefix = forced_prefix(choice, tools, engine.chat_template)
        if body.stream and (body.logprobs or body.top_logprobs):
            raise APIError(400, "logprobs are not sent when stream=true; send stream=false", param="logprobs")
        try:
            prompt = engine.render(messages, tools)
        except Exception as exc:  # a template error is the caller's conversation
            raise APIError(
                400, f"cannot render the conversation with the chat template: {exc}", param="messages"
            ) from None
        prompt_ids = engine.encode(prompt) + (engine.encode(prefix) if prefix else [])
        top = body.top_logprobs or 0
        rows = _requests(
            body,
            engine,
            prompt_ids,
            body.max_completion_tokens or body.max_tokens,
            logprobs=body.logprobs or bool(top),
            top_logprobs=top,
        )
        parse_tools = bool(tools) and choice != "none"
        if body.stream:
            options = (body.model_extra or {}).get("stream_options") or {}
            events = stream_chat(
                engine,
                rows,
                name=name,
                prefix=prefix,
                parse_tools=parse_tools,
                include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
                prompt_tokens=len(prompt_ids),
                return_token_ids=body.return_token_ids,
            )
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        results = await engine.generate(rows)
        choices = []
        for i, result in enumerate(results):
            entry = chat_choice(i, result, parse_tools=parse_tools, prefix=prefix)
            entry.pop("_calls")
            entry["logprobs"] = _chat_logprobs(engine, result)
            if body.return_token_ids:
                entry["token_ids"] = result.token_ids
            choices.append(entry)
        response = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": _usage(results, len(prompt_ids)),
        }
        if body.return_token_ids:
            response["prompt_token_ids"] = prompt_ids
        return response

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        _unsupported(body)
        if body.stream:
            raise APIError(
                400,
                "stream=true is served on /v1/chat/completions only; send stream=false here",
                param="stream",
            )
        check_model(body.model)
        if body.echo or body.suffix or (body.best_of or 1) > 1:
            raise APIError(400, "echo, suffix and best_of are not supported", param="echo")
        prompt = body.prompt
        if isinstance(prompt, str):
            prompts = [engine.encode(prompt)]
        elif prompt and all(isinstance(p, int) for p in prompt):
            prompts = [cast(list[int], list(prompt))]
        else:
            prompts = [engine.encode(p) if isinstance(p, str) else list(cast(list[int], p)) for p in prompt]
        if not prompts or not all(prompts):
            raise APIError(400, "prompt must not be empty", param="prompt")
        vocab = len(engine.tokenizer)
        if any(t < 0 or t >= vocab for p in prompts for t in p):
            raise APIError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        want_logprobs = body.logprobs is not None
        groups = [
            _requests(
                body,
                engine,
                ids,
                body.max_tokens or 16,
                logprobs=want_logprobs,
                top_logprobs=body.logprobs or 0,
            )
            for ids in prompts
        ]
        results = await engine.generate([row for group in groups for row in group])
        choices = []
        for index, result in enumerate(results):
            entry: dict[str, Any] = {
                "index": index,
                "text": result.text,
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
            if want_logprobs:
                tokens = [engine.decode_token(t) for t in result.token_ids]
                offsets, at = [], 0
                for token in tokens:
                    offsets.append(at)
                    at += len(token)
                entry["logprobs"] = {
                    "tokens": tokens,
                    "token_logprobs": result.logprobs,
                    "text_offset": offsets,
                    "top_logprobs": [
                        {engine.decode_token(t): lp for t, lp in step} for step in result.top_logprobs
                    ]
                    if result.top_logprobs
                    else None,
                }
            if body.return_token_ids:
                entry["token_ids"] = result.token_ids
            choices.append(entry)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": _usage(results, sum(len(p) for p in prompts)),
        }

    return app
