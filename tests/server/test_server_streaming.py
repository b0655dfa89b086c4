"""``stream=true`` and ``tool_choice`` over a scripted model, called with the official ``openai`` client.

The streamed deltas must add up to exactly the non-streamed message (content, tool calls, finish
reason), arrive as more than one chunk, and end with a usage chunk when ``include_usage`` is asked.
"""

from __future__ import annotations

import json

import httpx
import pytest
from openai_api import PYTHON_TOOL, USER, openai_client

from agentkit.server.app import create_app

CALL_TEXT = (
    '<think>plan: use python</think>Let me compute.<tool_call>{"name": "python", "arguments": '
    '{"code": "print(6*7)"}}</tool_call>'
)
TWO_CALLS = (
    '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>'
    '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
)
TOOLS = [
    PYTHON_TOOL,
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    },
]


def _collect(stream) -> dict:
    """Assemble streamed chunks the way a client does; keep the raw chunks for shape checks."""
    chunks = list(stream)
    content, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return {
        "chunks": chunks,
        "content": content,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


def _same(streamed: dict, response) -> None:
    message = response.choices[0].message
    assert streamed["content"] == (message.content or "")
    assert streamed["finish"] == response.choices[0].finish_reason
    expected = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or []
    ]
    assert [{"name": c["name"], "arguments": c["arguments"]} for c in streamed["calls"]] == [
        {"name": c["name"], "arguments": c["arguments"]} for c in expected
    ]
    assert all(c["id"] for c in streamed["calls"])


@pytest.mark.parametrize("text", [CALL_TEXT, TWO_CALLS, "The answer is 42 and that is final."])
def test_streamed_deltas_add_up_to_the_plain_response(scripted_engine_factory, serve_app, text):
    engine = scripted_engine_factory(text)
    with serve_app(create_app(engine, served_model_name="tiny")) as url:
        client = openai_client(url)
        plain = client.chat.completions.create(model="tiny", messages=USER, tools=TOOLS, max_tokens=96)
        streamed = _collect(
            client.chat.completions.create(
                model="tiny",
                messages=USER,
                tools=TOOLS,
                max_tokens=96,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    _same(streamed, plain)
    chunks = streamed["chunks"]
    assert all(
        c.object == "chat.completion.chunk" and c.id == chunks[0].id and c.model == "tiny" for c in chunks
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and streamed["usage"] is not None  # usage comes last, on its own
    assert streamed["usage"].completion_tokens == plain.usage.completion_tokens
    assert streamed["usage"].prompt_tokens == plain.usage.prompt_tokens
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    if plain.choices[0].message.content:
        assert len(content_chunks) > 2  # token by token, not one final blob


def test_stream_without_include_usage_has_no_usage_chunk_and_ends_with_done(
    scripted_engine_factory, serve_app
):
    engine = scripted_engine_factory("hello world")
    with serve_app(create_app(engine)) as url:
        with httpx.stream(
            "POST", url + "/v1/chat/completions", json={"messages": USER, "stream": True, "max_tokens": 16}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert all(e["choices"] for e in events) and "usage" not in events[-1]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "hello world"


def test_stream_stop_strings_and_n(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory("alpha beta STOP gamma")
    with serve_app(create_app(engine)) as url:
        client = openai_client(url)
        plain = client.chat.completions.create(
            model="scripted", messages=USER, stop=["STOP"], n=2, max_tokens=32
        )
        chunks = list(
            client.chat.completions.create(
                model="scripted", messages=USER, stop=["STOP"], n=2, max_tokens=32, stream=True
            )
        )
    for index in range(2):
        text = "".join(
            c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == index
        )
        assert text == plain.choices[index].message.content == "alpha beta "


def test_tool_choice_named_and_required_force_a_call(scripted_engine_factory, serve_app):
    # The model would answer in prose after the forced prefix only if it ignored it: the scripted model
    # writes the call text, and the server supplies the forced start of it.
    engine = scripted_engine_factory('<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>')
    with serve_app(create_app(engine)) as url:
        client = openai_client(url)
        named = client.chat.completions.create(
            model="scripted",
            messages=USER,
            tools=TOOLS,
            max_tokens=64,
            tool_choice={"type": "function", "function": {"name": "search"}},
        )
        required = client.chat.completions.create(
            model="scripted", messages=USER, tools=TOOLS, max_tokens=64, tool_choice="required"
        )
        streamed = _collect(
            client.chat.completions.create(
                model="scripted",
                messages=USER,
                tools=TOOLS,
                max_tokens=64,
                stream=True,
                tool_choice={"type": "function", "function": {"name": "search"}},
            )
        )
        prompt_plain = client.chat.completions.create(
            model="scripted", messages=USER, tools=TOOLS, max_tokens=64
        )
    for response in (named, required):
        (call,) = response.choices[0].message.tool_calls
        assert call.function.name == "search" and json.loads(call.function.arguments) == {"query": "x"}
        assert response.choices[0].finish_reason == "tool_calls"
    _same(streamed, named)
    # The forced prefix is in the prompt, so fewer tokens are generated than without it.
    assert (
        named.usage.completion_tokens
        < required.usage.completion_tokens
        < prompt_plain.usage.completion_tokens
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tool_choice": "required"}, "no tools"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "'nope'"),
        ({"tools": TOOLS, "tool_choice": "always"}, "'always'"),
        ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "must be"),
        ({"stream": True, "logprobs": True}, "logprobs"),
    ],
)
def test_tool_choice_that_cannot_be_honoured_is_a_400(scripted_engine_factory, serve_app, body, needle):
    engine = scripted_engine_factory("x")
    with serve_app(create_app(engine)) as url:
        response = httpx.post(url + "/v1/chat/completions", json={"messages": USER, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["param"] in ("tool_choice", "logprobs")


def test_tool_choice_needs_a_template_that_writes_call_blocks(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory("x")
    engine.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}<|Assistant|>"
    with serve_app(create_app(engine)) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"messages": USER, "tools": TOOLS, "tool_choice": "required"}
        )
    assert response.status_code == 400 and "template" in response.json()["error"]["message"]
