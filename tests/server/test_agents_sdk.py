"""The OpenAI Agents SDK (``openai-agents``) over ``OpenAIChatCompletionsModel``, streamed and not.

Against a real ``agentkit serve`` process on the tiny random MLA model (the text is junk, the protocol
is what is checked: a final output, streamed events, token usage), and against the real app on
loopback with a scripted model that calls the agent's function tool, so the tool really runs.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agentkit.server.app import create_app


def _sdk():
    """The SDK, imported when a test runs (its import costs seconds of every collection). The test extra installs
    openai-agents; a missing SDK fails the test, it does not skip."""
    import agents

    agents.set_tracing_disabled(True)  # tracing would export to api.openai.com
    return agents


def _agent(url: str, model_name: str, calls: list[str], **settings):
    from openai import AsyncOpenAI

    agents = _sdk()

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    model = agents.OpenAIChatCompletionsModel(model=model_name, openai_client=client)
    return agents.Agent(
        name="weather",
        instructions="Answer with the weather tool.",
        model=model,
        tools=[get_weather],
        model_settings=agents.ModelSettings(**settings),
        tool_use_behavior="stop_on_first_tool",
    )


async def _run_both(agent, prompt: str):
    agents = _sdk()
    plain = await agents.Runner.run(agent, prompt, max_turns=3)
    streamed = agents.Runner.run_streamed(agent, prompt, max_turns=3)
    kinds, deltas = [], []
    async for event in streamed.stream_events():
        kinds.append(event.type)
        if (
            event.type == "raw_response_event"
            and getattr(event.data, "type", "") == "response.output_text.delta"
        ):
            deltas.append(event.data.delta)
    return plain, streamed, kinds, deltas


@pytest.mark.slow
def test_agents_sdk_runs_and_streams_against_agentkit_serve(tiny_server):
    calls: list[str] = []
    agent = _agent(tiny_server, "tiny-mla", calls, max_tokens=12, temperature=0.0, include_usage=True)
    plain, streamed, kinds, deltas = asyncio.run(_run_both(agent, "What is the weather in Paris?"))
    # Greedy decoding on the same prompt: both runs see the same text, however junk.
    assert isinstance(plain.final_output, str) and plain.final_output
    assert streamed.final_output == plain.final_output
    assert "raw_response_event" in kinds and len(deltas) > 1 and "".join(deltas) == plain.final_output
    usage = plain.context_wrapper.usage
    assert usage.output_tokens > 0 and usage.input_tokens > 20
    assert streamed.context_wrapper.usage.output_tokens == usage.output_tokens


def test_agents_sdk_calls_the_function_tool_streamed_and_not(scripted_engine_factory, serve_app):
    text = '<think>use the tool</think><tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    engine = scripted_engine_factory(text)
    calls: list[str] = []
    with serve_app(create_app(engine, served_model_name="scripted")) as url:
        agent = _agent(url + "/v1", "scripted", calls, max_tokens=64)
        plain, streamed, kinds, _ = asyncio.run(_run_both(agent, "Weather in Paris?"))
    # A forced call: the server writes the start of the block, the model only the arguments.
    forced_engine = scripted_engine_factory(text[text.index("<tool_call>") :])
    with serve_app(create_app(forced_engine, served_model_name="scripted")) as url:
        forced = _agent(url + "/v1", "scripted", calls, max_tokens=64, tool_choice="get_weather")
        forced_result = asyncio.run(_sdk().Runner.run(forced, "Weather?", max_turns=3))
    assert calls == ["Paris", "Paris", "Paris"]  # run, run_streamed and the forced run each called it
    assert plain.final_output == streamed.final_output == forced_result.final_output == "sunny in Paris"
    assert "run_item_stream_event" in kinds
    items = [item.type for item in streamed.new_items]
    assert "tool_call_item" in items and "tool_call_output_item" in items
    call_item = next(i for i in streamed.new_items if i.type == "tool_call_item")
    assert json.loads(call_item.raw_item.arguments) == {"city": "Paris"}
