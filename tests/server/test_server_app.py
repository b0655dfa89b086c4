"""The HTTP API (real uvicorn on loopback, official ``openai`` client) over a scripted model."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai_api import PYTHON_TOOL, USER, openai_client

from agentkit.chat_template import template_sha256
from agentkit.server.app import create_app

CALL_TEXT = '<think>plan: use python</think><tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call>'
TOOLS = [PYTHON_TOOL]


def test_tool_calls_are_parsed_into_the_openai_response(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory(CALL_TEXT)
    with serve_app(create_app(engine, served_model_name="tiny")) as url:
        response = openai_client(url).chat.completions.create(
            model="tiny", messages=USER, tools=TOOLS, max_tokens=64
        )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "<think>plan: use python</think>"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "python" and call.id
    assert json.loads(call.function.arguments) == {"code": "print(6*7)"}
    assert (
        response.model == "tiny" and response.usage.completion_tokens == len(engine.encode(CALL_TEXT)) + 1
    )  # + EOS
    assert response.usage.prompt_tokens == len(engine.encode(engine.render(USER, TOOLS)))


def test_without_tools_the_text_comes_back_as_is(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory(CALL_TEXT)
    with serve_app(create_app(engine)) as url:
        client = openai_client(url)
        plain = client.chat.completions.create(model="scripted", messages=USER, max_tokens=64)
        declined = client.chat.completions.create(
            model="scripted", messages=USER, tools=TOOLS, tool_choice="none", max_tokens=64
        )
    for response in (plain, declined):
        assert response.choices[0].message.content == CALL_TEXT and not response.choices[0].message.tool_calls
        assert response.choices[0].finish_reason == "stop"


def test_length_stop_strings_n_and_token_ids(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory(CALL_TEXT)
    with serve_app(create_app(engine)) as url:
        client = openai_client(url)
        short = client.chat.completions.create(model="scripted", messages=USER, tools=TOOLS, max_tokens=3)
        stopped = client.chat.completions.create(
            model="scripted", messages=USER, stop=["</think>"], max_tokens=64
        )
        several = client.chat.completions.create(
            model="scripted",
            messages=USER,
            n=3,
            max_tokens=4,
            seed=1,
            extra_body={"return_token_ids": True, "top_k": 5, "repetition_penalty": 1.05},
            logprobs=True,
            top_logprobs=2,
        )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert stopped.choices[0].message.content == "<think>plan: use python"
    assert stopped.choices[0].finish_reason == "stop"
    assert [c.index for c in several.choices] == [0, 1, 2]
    for choice in several.choices:
        extra = choice.model_extra
        assert extra["token_ids"] == engine.encode(CALL_TEXT)[:4]
        assert len(choice.logprobs.content) == 4 and len(choice.logprobs.content[0].top_logprobs) == 2
        assert all(item.logprob <= 0 for item in choice.logprobs.content)
    assert several.model_extra["prompt_token_ids"] == engine.encode(engine.render(USER))


def test_models_health_and_completions(scripted_engine_factory, serve_app, tiny_tokenizer):
    engine = scripted_engine_factory("Hello there")
    with serve_app(create_app(engine, served_model_name="tiny", root="/ckpt/tiny")) as url:
        models = httpx.get(url + "/v1/models").json()
        health = httpx.get(url + "/health")
        client = openai_client(url)
        text = client.completions.create(model="tiny", prompt="Once<|Assistant|>", max_tokens=8)
        anchor = tiny_tokenizer.convert_tokens_to_ids("<|Assistant|>")
        ids = client.completions.create(
            model="/ckpt/tiny", prompt=[[5, 6, anchor], [8, anchor]], max_tokens=2, logprobs=1
        )
    (entry,) = models["data"]
    assert entry["id"] == "tiny" and entry["max_model_len"] == engine.max_model_len
    assert entry["chat_template_sha256"] == template_sha256(tiny_tokenizer.chat_template)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert text.choices[0].text == "Hello there" and text.choices[0].finish_reason == "stop"
    assert len(ids.choices) == 2 and ids.usage.prompt_tokens == 5
    assert len(ids.choices[1].logprobs.token_logprobs) == 2 and ids.choices[1].finish_reason == "length"


BAD_REQUESTS = [
    ({"model": "scripted"}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role"),
    ({"messages": USER, "temperature": 3}, 400, "temperature"),
    ({"messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": USER, "n": 0}, 400, "n"),
    ({"messages": USER, "logit_bias": {"5": 1.0}}, 400, "logit_bias"),
    ({"messages": USER, "tool_choice": "required"}, 400, "tool_choice"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        400,
        "messages",
    ),
    ({"messages": USER, "tools": [{"type": "function"}]}, 400, "tools.0.function"),
    ({"model": "gpt-9", "messages": USER}, 404, "model"),
    ({"messages": USER, "max_tokens": 600}, 400, "messages"),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD_REQUESTS)
def test_bad_requests_get_openai_style_errors(scripted_engine_factory, serve_app, body, status, param):
    engine = scripted_engine_factory("x")
    with serve_app(create_app(engine)) as url:
        response = httpx.post(url + "/v1/chat/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param and "Traceback" not in response.text


def test_context_overflow_message_and_other_error_shapes(scripted_engine_factory, serve_app):
    engine = scripted_engine_factory("x", max_model_len=64)
    long_prompt = [{"role": "user", "content": "word " * 200}]
    with serve_app(create_app(engine)) as url:
        too_long = httpx.post(url + "/v1/chat/completions", json={"messages": long_prompt, "max_tokens": 4})
        not_json = httpx.post(
            url + "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
        no_route = httpx.get(url + "/v1/nothing")
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            openai_client(url).chat.completions.create(model="scripted", messages=long_prompt)
    assert (
        too_long.status_code == 400
        and "maximum context length is 64 tokens" in too_long.json()["error"]["message"]
    )
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]
    assert no_route.status_code == 404 and no_route.json()["error"]["type"] == "not_found_error"
