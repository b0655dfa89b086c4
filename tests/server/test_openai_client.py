"""OpenAIClient against real loopback HTTP servers that fail on purpose (503, 429, timeouts, refusals)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agentkit.client import ModelClient, Sampling
from agentkit.errors import ContextExceeded, ModelError
from agentkit.openai_client import OpenAIClient, completion_from_response
from agentkit.records import Message, ToolCall, ToolSpec

TOOLS = [
    ToolSpec.model_validate(
        {
            "type": "function",
            "function": {
                "name": "python",
                "description": "run code",
                "parameters": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}},
                    "required": ["code"],
                },
            },
        }
    )
]


def ok_body(content: str = "fine", **message) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class Flaky:
    """A FastAPI app that answers each request with the next behaviour of its plan (then ``ok``)."""

    def __init__(self, plan: list, delay: float = 0.0):
        self.plan, self.delay = list(plan), delay
        self.bodies: list[dict] = []
        self.active = self.peak = 0
        self.app = FastAPI()

        @self.app.get("/health")
        async def health():
            return {"status": "ok"}

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request):
            self.bodies.append(await request.json())
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                step = self.plan.pop(0) if self.plan else "ok"
                if self.delay:
                    await asyncio.sleep(self.delay)
                if step == "slow":
                    await asyncio.sleep(1.5)
                    return ok_body()
                if step == "context":
                    return JSONResponse(
                        {
                            "error": {
                                "message": "This model's maximum context length is 4096 tokens. "
                                "However, you requested 5000 tokens.",
                                "type": "BadRequestError",
                            }
                        },
                        status_code=400,
                    )
                if step == "bad":
                    return JSONResponse({"error": {"message": "temperature: must be <= 2"}}, status_code=400)
                if step == 429:
                    return JSONResponse(
                        {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "0"}
                    )
                if isinstance(step, int):
                    return JSONResponse({"error": {"message": f"failure {step}"}}, status_code=step)
                if isinstance(step, dict):
                    return step
                return ok_body()
            finally:
                self.active -= 1


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/v1"


def client(urls, **kwargs) -> OpenAIClient:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_max", 0.05)
    return OpenAIClient(urls, "m", **kwargs)


def complete(c: OpenAIClient, messages=None, tools=None, sampling=None):
    async def go():
        try:
            return await c.complete(messages or [Message(role="user", content="hi")], tools, sampling)
        finally:
            await c.aclose()

    return asyncio.run(go())


def test_is_a_model_client():
    c = client("http://127.0.0.1:1/v1")
    assert isinstance(c, ModelClient) and c.name == "m" and c.endpoint_kind == "openai-compatible"


def test_retries_5xx_then_succeeds(serve_app):
    flaky = Flaky([503, 500, 502])
    with serve_app(flaky.app) as url:
        completion = complete(client(url + "/v1"))
    assert completion.message.content == "fine" and completion.prompt_tokens == 7
    assert len(flaky.bodies) == 4


def test_429_is_retried(serve_app):
    flaky = Flaky([429, 429])
    with serve_app(flaky.app) as url:
        assert complete(client(url + "/v1")).raw_text == "fine"
    assert len(flaky.bodies) == 3


def test_gives_up_with_model_error_after_max_retries(serve_app):
    flaky = Flaky([503] * 10)
    with serve_app(flaky.app) as url, pytest.raises(ModelError, match="after 3 attempts.*503"):
        complete(client(url + "/v1", max_retries=2))
    assert len(flaky.bodies) == 3


def test_context_overflow_raises_context_exceeded_without_retry(serve_app):
    flaky = Flaky(["context"])
    with serve_app(flaky.app) as url, pytest.raises(ContextExceeded, match="maximum context length"):
        complete(client(url + "/v1"))
    assert len(flaky.bodies) == 1


def test_other_4xx_is_not_retried(serve_app):
    flaky = Flaky(["bad"])
    with serve_app(flaky.app) as url, pytest.raises(ModelError, match="HTTP 400: temperature") as info:
        complete(client(url + "/v1"))
    assert not isinstance(info.value, ContextExceeded) and len(flaky.bodies) == 1


def test_timeout_moves_to_another_endpoint(serve_app):
    slow, fast = Flaky(["slow"]), Flaky([])
    with serve_app(slow.app) as slow_url, serve_app(fast.app) as fast_url:
        c = client([slow_url + "/v1", fast_url + "/v1"], timeout=0.3)
        c._turn = -1  # the first pick goes to the slow endpoint
        completion = complete(c)
    assert completion.message.content == "fine"
    assert len(slow.bodies) == 1 and len(fast.bodies) == 1


def test_refused_endpoint_is_benched_and_traffic_goes_to_the_live_one(serve_app):
    live = Flaky([])
    with serve_app(live.app) as url:
        c = client([closed_port_url(), url + "/v1"])

        async def many():
            try:
                return [await c.complete([Message(role="user", content=str(i))]) for i in range(6)]
            finally:
                await c.aclose()

        results = asyncio.run(many())
    assert all(r.message.content == "fine" for r in results) and len(live.bodies) == 6
    dead = c.endpoints[0]
    assert dead.requests <= 2 and dead.failures >= 1


def test_least_loaded_routing_spreads_concurrent_requests(serve_app):
    a, b = Flaky([], delay=0.3), Flaky([], delay=0.3)
    with serve_app(a.app) as url_a, serve_app(b.app) as url_b:
        c = client(f"{url_a}/v1,{url_b}/v1")

        async def burst():
            try:
                return await asyncio.gather(
                    *(c.complete([Message(role="user", content="x")]) for _ in range(8))
                )
            finally:
                await c.aclose()

        asyncio.run(burst())
    assert len(a.bodies) == 4 and len(b.bodies) == 4


def test_concurrency_is_bounded(serve_app):
    server = Flaky([], delay=0.2)
    with serve_app(server.app) as url:
        c = client(url + "/v1", max_concurrency=2)

        async def burst():
            try:
                await asyncio.gather(*(c.complete([Message(role="user", content="x")]) for _ in range(6)))
            finally:
                await c.aclose()

        asyncio.run(burst())
    assert len(server.bodies) == 6 and server.peak == 2


def test_health_probes_every_endpoint(serve_app):
    live = Flaky([])
    with serve_app(live.app) as url:
        c = client([closed_port_url(), url + "/v1"])
        assert asyncio.run(c.health()) is True
        assert c.endpoints[0].failures == 1 and c.endpoints[1].failures == 0
    assert asyncio.run(client(closed_port_url()).health()) is False


def test_request_body_carries_messages_tools_and_sampling(serve_app):
    server = Flaky([])
    history = [
        Message(role="user", content="compute"),
        Message(role="assistant", content="", tool_calls=[ToolCall.make("call_0", "python", {"code": "1"})]),
        Message(role="tool", tool_call_id="call_0", name="python", content="1"),
    ]
    sampling = Sampling(
        temperature=0.3, top_p=0.9, top_k=5, max_tokens=12, repetition_penalty=1.1, stop=["END"], seed=4
    )
    with serve_app(server.app) as url:
        complete(client(url + "/v1", return_token_ids=True), history, TOOLS, sampling)
    body = server.bodies[0]
    assert body["model"] == "m" and body["tools"][0]["function"]["name"] == "python"
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"code": "1"}'
    assert body["messages"][1]["content"] is None and body["messages"][2]["tool_call_id"] == "call_0"
    assert {
        k: body[k]
        for k in ("temperature", "top_p", "top_k", "max_tokens", "repetition_penalty", "stop", "seed")
    } == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 5,
        "max_tokens": 12,
        "repetition_penalty": 1.1,
        "stop": ["END"],
        "seed": 4,
    }
    assert body["logprobs"] is True and body["return_token_ids"] is True


def test_plain_request_does_not_ask_for_logprobs(serve_app):
    server = Flaky([])
    with serve_app(server.app) as url:
        complete(client(url + "/v1"))
    assert "logprobs" not in server.bodies[0] and "return_token_ids" not in server.bodies[0]


def test_server_parsed_tool_calls_are_used_and_renumbered(serve_app):
    calls = [
        {
            "id": "chatcmpl-tool-abc",
            "type": "function",
            "function": {"name": "python", "arguments": '{"code": "print(2)"}'},
        }
    ]
    server = Flaky([ok_body("<think>use python</think>", tool_calls=calls)])
    history = [
        Message(role="user", content="a"),
        Message(role="assistant", content="", tool_calls=[ToolCall.make("call_0", "python", {"code": "1"})]),
        Message(role="tool", tool_call_id="call_0", content="1"),
    ]
    with serve_app(server.app) as url:
        completion = complete(client(url + "/v1"), history, TOOLS)
    (call,) = completion.message.tool_calls
    assert (
        call.id == "call_1"
        and call.name == "python"
        and call.function.parsed_arguments() == {"code": "print(2)"}
    )
    assert (
        completion.finish_reason == "tool_calls" and completion.message.content == "<think>use python</think>"
    )
    assert completion.raw_text == (
        '<think>use python</think>\n<tool_call>{"name": "python", '
        '"arguments": {"code": "print(2)"}}</tool_call>'
    )


def test_text_tool_calls_are_parsed_when_the_server_does_not():
    text = (
        'ok <tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call><tool_call>{bad</tool_call>'
    )
    completion = completion_from_response(ok_body(text), start=3)
    assert [c.id for c in completion.message.tool_calls] == ["call_3"]
    assert len(completion.parse_errors) == 1 and completion.raw_text == text


def test_token_ids_come_from_the_response():
    body = ok_body("ab")
    body["choices"][0]["token_ids"] = [5, 6]
    body["choices"][0]["logprobs"] = {
        "content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.0}]
    }
    completion = completion_from_response(body)
    assert completion.token_ids == [5, 6] and completion.logprobs == [-0.5, -1.0]
    body = ok_body("ab")
    body["choices"][0]["logprobs"] = {"content": [{"token": "token_id:9", "logprob": -0.1}]}
    assert completion_from_response(body).token_ids == [9]
    assert completion_from_response(ok_body("ab")).token_ids is None


def test_reasoning_field_is_kept_in_the_text():
    completion = completion_from_response(ok_body("42", reasoning_content="think hard"))
    assert completion.raw_text == "<think>think hard</think>42"
    assert json.loads(json.dumps(completion.message.model_dump()))["content"].startswith("<think>")


def test_bad_base_urls_are_rejected():
    with pytest.raises(ValueError, match="http"):
        OpenAIClient("localhost:8000", "m")
    with pytest.raises(ValueError, match="at least one"):
        OpenAIClient(" , ", "m")
