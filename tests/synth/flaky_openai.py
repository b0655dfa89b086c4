"""A flaky OpenAI-compatible server (FastAPI + uvicorn on loopback) that plays a model for the toy env.

The model reads ``task-K: what is a*b+c?``, calls ``add(a*b, c)`` and answers ``\\boxed{sum}``. Task K
gets the misbehaviour ``MODES[K % len(MODES)]``; requests are counted per conversation (task, sampling
seed) and turn, so a transient fault clears after a fixed number of requests whatever the retry policy.
"""

import asyncio
import json
import re
import time
from collections import Counter

from asgi_server import serve_in_thread

MODES = [
    "ok",
    "text_calls",
    "5xx_always",
    "5xx_twice",
    "timeout_once",
    "malformed_once",
    "truncated_always",
    "slow",
    "wrong_answer",
    "not_json_always",
    "429_once",
]
EXPECTED = {  # mode -> (status, passed), or "failure" for an infrastructure failure after retries
    "ok": ("completed", True),
    "text_calls": ("completed", True),
    "5xx_always": "failure",
    "5xx_twice": ("completed", True),
    "timeout_once": ("completed", True),
    "malformed_once": ("completed", True),
    "truncated_always": ("parse_error", False),
    "slow": ("completed", True),
    "wrong_answer": ("completed", False),
    "not_json_always": "failure",
    "429_once": ("completed", True),
}
_PROMPT = re.compile(r"task-(\d+): what is (\d+)\*(\d+)\+(\d+)\?")


def create_app(model: str = "fake", slow: float = 0.3, stall: float = 3.0):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI()
    app.state.requests = Counter()

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": model, "object": "model", "chat_template_sha256": "f" * 64}],
        }

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    def reply(content: str | None = None, calls: list | None = None, finish: str = "stop"):
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [
                {"id": f"x{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(calls)
            ]
        return {
            "id": "c",
            "object": "chat.completion",
            "model": model,
            "created": int(time.time()),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        messages = body["messages"]
        number, a, b, c = (int(x) for x in _PROMPT.search(messages[1]["content"]).groups())
        mode = MODES[number % len(MODES)]
        turn = sum(m["role"] == "assistant" for m in messages)
        conversation = (number, body.get("seed"), turn)
        app.state.requests[conversation] += 1
        seen = app.state.requests[conversation]
        if mode == "5xx_always" or (mode == "5xx_twice" and seen <= 2):
            return JSONResponse({"error": {"message": "upstream overloaded"}}, status_code=503)
        if mode == "429_once" and seen == 1:
            return JSONResponse(
                {"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "0"}
            )
        if mode == "not_json_always":
            return PlainTextResponse("<html>bad gateway</html>", status_code=200)
        if mode == "timeout_once" and turn == 0 and seen == 1:
            await asyncio.sleep(stall)
        if mode == "slow":
            await asyncio.sleep(slow)
        last = messages[-1]
        if last["role"] == "tool" and not last["content"].startswith("error"):
            answer = int(last["content"]) + (1 if mode == "wrong_answer" else 0)
            return reply(f"<think>The tool says {last['content']}.</think>The answer is \\boxed{{{answer}}}.")
        if mode == "truncated_always":
            return reply('<tool_call>{"name": "add", "argu', finish="length")
        if mode == "malformed_once" and seen == 1 and turn == 0:
            return reply('<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>')
        if mode == "text_calls":
            body = json.dumps({"name": "add", "arguments": {"a": a * b, "b": c}})
            return reply(f"<think>Multiply, then add.</think><tool_call>{body}</tool_call>")
        return reply("<think>Multiply, then add.</think>", calls=[("add", {"a": a * b, "b": c})])

    return app


class ServerThread:
    """A fake OpenAI server in a background thread; ``base_url`` (``.../v1``) once it listens."""

    def __init__(self, app):
        self._serving = serve_in_thread(app, timeout=30)

    def __enter__(self) -> "ServerThread":
        self.base_url = self._serving.__enter__() + "/v1"
        return self

    def __exit__(self, *exc) -> None:
        self._serving.__exit__(*exc)
