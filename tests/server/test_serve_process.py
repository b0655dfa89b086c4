"""``agentkit serve`` as a real subprocess on the tiny MLA model, called over HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from openai_api import PYTHON_TOOL

from agentkit.chat_template import template_sha256
from agentkit.client import Sampling
from agentkit.config import ModelConfig
from agentkit.errors import ConfigError
from agentkit.openai_client import OpenAIClient
from agentkit.records import Message, ToolSpec
from agentkit.server.launch import embedded_server, resolve_model_path

TOOLS = [PYTHON_TOOL]


def test_openai_client_with_tools_gets_a_well_formed_response(tiny_server, tiny_tokenizer):
    client = openai.OpenAI(base_url=tiny_server, api_key="unused", max_retries=0)
    response = client.chat.completions.create(
        model="tiny-mla",
        tools=TOOLS,
        max_tokens=8,
        temperature=0.7,
        top_p=0.9,
        seed=1,
        messages=[
            {"role": "system", "content": "You are careful."},
            {"role": "user", "content": "What is 6*7?"},
        ],
        extra_body={"top_k": 20},
    )
    assert response.object == "chat.completion" and response.model == "tiny-mla" and response.id
    (choice,) = response.choices
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content is not None or choice.message.tool_calls
    assert 0 < response.usage.completion_tokens <= 8 and response.usage.prompt_tokens > 20
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    (model,) = client.models.list().data
    assert model.id == "tiny-mla" and model.model_extra["chat_template_sha256"] == template_sha256(
        tiny_tokenizer.chat_template
    )


def test_openai_client_batches_and_health_answers_during_generation(tiny_server):
    tools = [ToolSpec.model_validate(t) for t in TOOLS]

    async def scenario():
        client = OpenAIClient(tiny_server, "tiny-mla", max_retries=0)
        try:
            assert await client.health()
            burst = asyncio.gather(
                *(
                    client.complete(
                        [Message(role="user", content=f"question {i}")],
                        tools,
                        Sampling(max_tokens=256, seed=i),
                    )
                    for i in range(4)
                )
            )
            await asyncio.sleep(0.1)  # long enough to start the burst, short of finishing 4 x 256 tokens
            async with httpx.AsyncClient() as http:
                health = await http.get(tiny_server[:-3] + "/health", timeout=10)
            answered_while_generating = not burst.done()
            return await burst, health, answered_while_generating
        finally:
            await client.aclose()

    completions, health, answered_while_generating = asyncio.run(scenario())
    assert health.status_code == 200 and answered_while_generating
    for completion in completions:
        assert completion.model == "tiny-mla" and 0 < completion.completion_tokens <= 256
        assert completion.finish_reason in ("stop", "length", "tool_calls")
    stats = httpx.get(tiny_server[:-3] + "/health").json()["stats"]
    assert stats["largest_batch"] >= 2 and stats["batches"] < stats["rows"]


def test_prompt_over_the_context_is_a_400(tiny_server):
    too_long = [{"role": "user", "content": "7 " * 5000}]
    response = httpx.post(
        tiny_server + "/chat/completions", json={"messages": too_long, "max_tokens": 4}, timeout=60
    )
    assert response.status_code == 400 and "maximum context length" in response.json()["error"]["message"]


def test_resolve_model_path(tmp_path, monkeypatch, tiny_model_dir):
    assert resolve_model_path(ModelConfig(path=str(tiny_model_dir))) == tiny_model_dir.resolve()
    with pytest.raises(ConfigError, match="model.path"):
        resolve_model_path(ModelConfig(path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="model.arch"):
        resolve_model_path(ModelConfig(name="empty"))
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    model = ModelConfig(name="tiny-mla", arch={"preset": "tiny-mla", "num_hidden_layers": 1})
    path = resolve_model_path(model)
    assert path.parent == tmp_path / "models" and path.name.startswith("tiny-mla-")
    assert json.loads((path / "config.json").read_text())["num_hidden_layers"] == 1
    assert (path / "tokenizer.json").exists() and resolve_model_path(model) == path


def test_a_server_that_cannot_start_is_reported_with_its_log(tiny_model_dir):
    from agentkit.errors import ModelError

    with pytest.raises(ModelError, match=r"exited with code 2(.|\n)*cannot listen on 256\.0\.0\.1"):
        with embedded_server(
            ModelConfig(name="tiny-mla", path=str(tiny_model_dir)), host="256.0.0.1", timeout=120
        ):
            pass
