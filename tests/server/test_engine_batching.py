"""The batching engine and TransformersClient: one generate call per batch, rows that sample and stop alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentkit.client import ModelClient, Sampling
from agentkit.errors import ContextExceeded
from agentkit.records import Message, ToolCall, ToolSpec
from agentkit.server.engine import GenerationEngine, GenerationRequest, TransformersClient

CALL_TEXT = '<think>plan</think><tool_call>{"name": "python", "arguments": {"code": "print(1)"}}</tool_call>'


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    engine = GenerationEngine.from_pretrained(tiny_model_dir, max_batch_size=8, batch_wait_ms=50)
    yield engine
    engine.close()


def prompt(engine, text: str) -> list[int]:
    return engine.encode(engine.render([{"role": "user", "content": text}]))


def test_concurrent_requests_share_one_generate_call(scripted_engine_factory):
    engine = scripted_engine_factory(CALL_TEXT, max_batch_size=8, batch_wait_ms=300)
    rows = [GenerationRequest(prompt(engine, "q" * (i + 1)), max_tokens=64) for i in range(5)]
    before = engine.model.forward_calls

    async def concurrently():
        return await asyncio.gather(*(engine.generate([row]) for row in rows))

    results = [r for (r,) in run(concurrently())]
    assert engine.stats.batches == 1 and engine.stats.largest_batch == 5
    steps = len(engine.encode(CALL_TEXT)) + 1
    assert engine.model.forward_calls - before == steps  # one forward per step for all five rows
    assert all(r.text == CALL_TEXT and r.finish_reason == "stop" for r in results)


def test_batches_are_capped_at_max_batch_size(scripted_engine_factory):
    engine = scripted_engine_factory("ok", max_batch_size=2, batch_wait_ms=300)
    results = run(engine.generate([GenerationRequest(prompt(engine, "x"), max_tokens=8) for _ in range(5)]))
    assert len(results) == 5 and engine.stats.batches == 3 and engine.stats.largest_batch == 2


def test_rows_stop_on_their_own(scripted_engine_factory):
    engine = scripted_engine_factory(CALL_TEXT, batch_wait_ms=300)
    ids = prompt(engine, "hello")
    eos, length, stop, no_eos = run(
        engine.generate(
            [
                GenerationRequest(ids, max_tokens=200),
                GenerationRequest(ids, max_tokens=3),
                GenerationRequest(ids, max_tokens=200, stop=("</think>", "never")),
                GenerationRequest(ids, max_tokens=40, ignore_eos=True),
            ]
        )
    )
    assert engine.stats.batches == 1
    assert (
        eos.finish_reason == "stop"
        and eos.token_ids[-1] == engine.tokenizer.eos_token_id
        and eos.text == CALL_TEXT
    )
    assert length.finish_reason == "length" and len(length.token_ids) == 3
    assert stop.finish_reason == "stop" and stop.text == "<think>plan" and stop.stop_string == "</think>"
    assert len(stop.token_ids) < len(eos.token_ids)
    assert no_eos.finish_reason == "length" and len(no_eos.token_ids) == 40
    assert no_eos.text.startswith(CALL_TEXT) and engine.tokenizer.eos_token_id not in no_eos.token_ids


def test_left_padded_batch_matches_one_by_one(tiny_engine):
    short, long = prompt(tiny_engine, "hi"), prompt(tiny_engine, "a much longer question about 12 * 34 + 5")
    greedy = [
        GenerationRequest(short, max_tokens=12, temperature=0),
        GenerationRequest(long, 12, temperature=0),
    ]
    alone = [run(tiny_engine.generate([row]))[0].token_ids for row in greedy]
    together = [r.token_ids for r in run(tiny_engine.generate(greedy))]
    assert together == alone


def test_sampling_is_per_row_and_seeded(tiny_engine):
    ids = prompt(tiny_engine, "tell me something")
    rows = [
        GenerationRequest(ids, max_tokens=16, temperature=1.0, top_k=50, top_p=0.95, seed=seed)
        for seed in (7, 7, 8)
    ]
    greedy = GenerationRequest(ids, max_tokens=16, temperature=0)
    first = run(tiny_engine.generate([*rows, greedy]))
    again = run(tiny_engine.generate(rows[:1]))
    assert first[0].token_ids == first[1].token_ids == again[0].token_ids
    assert first[0].token_ids != first[2].token_ids
    top1 = run(
        tiny_engine.generate([GenerationRequest(ids, max_tokens=16, temperature=1.0, top_k=1, seed=3)])
    )
    assert first[3].token_ids == top1[0].token_ids  # top_k=1 is greedy, even next to sampled rows
    wide = GenerationRequest(
        ids, max_tokens=4, temperature=1.0, top_k=10**6, seed=1
    )  # k beyond the vocabulary
    assert len(run(tiny_engine.generate([wide, rows[0]]))[0].token_ids) == 4


def test_logprobs_are_those_of_the_chosen_tokens(tiny_engine):
    ids = prompt(tiny_engine, "x")
    (result,) = run(
        tiny_engine.generate(
            [GenerationRequest(ids, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)]
        )
    )
    assert len(result.logprobs) == len(result.token_ids) == 6
    for token, logprob, top in zip(result.token_ids, result.logprobs, result.top_logprobs, strict=True):
        assert top[0] == (token, pytest.approx(logprob))  # greedy: the chosen token is the most likely
        assert [lp for _, lp in top] == sorted((lp for _, lp in top), reverse=True) and logprob <= 0


def test_context_limit(tiny_engine):
    assert tiny_engine.check_context(10, None) == tiny_engine.max_model_len - 10
    assert tiny_engine.check_context(10, 5) == 5
    with pytest.raises(ContextExceeded, match="maximum context length is 4096 tokens"):
        tiny_engine.check_context(4000, 200)


def test_transformers_client_parses_tool_calls(scripted_engine_factory):
    client = TransformersClient(scripted_engine_factory(CALL_TEXT), name="scripted")
    assert isinstance(client, ModelClient) and client.endpoint_kind == "transformers"
    tools = [ToolSpec.model_validate({"type": "function", "function": {"name": "python"}})]
    history = [
        Message(role="user", content="go"),
        Message(role="assistant", content="", tool_calls=[ToolCall.make("call_0", "python", {"code": "0"})]),
        Message(role="tool", tool_call_id="call_0", content="0"),
    ]
    completion = run(client.complete(history, tools, Sampling(max_tokens=64)))
    (call,) = completion.message.tool_calls
    assert call.id == "call_1" and call.function.parsed_arguments() == {"code": "print(1)"}
    assert completion.finish_reason == "tool_calls" and completion.raw_text == CALL_TEXT
    assert completion.message.content == "<think>plan</think>" and completion.completion_tokens > 0


def test_transformers_client_on_the_tiny_model(tiny_model_dir):
    client = TransformersClient(tiny_model_dir, name="tiny", return_token_ids=True)

    async def go():
        try:
            return await asyncio.gather(
                *(
                    client.complete(
                        [Message(role="user", content=f"q{i}")], None, Sampling(max_tokens=5, seed=i)
                    )
                    for i in range(3)
                )
            )
        finally:
            await client.aclose()

    completions = run(go())
    for completion in completions:
        assert completion.model == "tiny" and completion.prompt_tokens > 0
        assert completion.completion_tokens == len(completion.token_ids) <= 5
        assert len(completion.logprobs) == len(completion.token_ids)
    assert client.engine.stats.rows == 3 and client.engine._closed


def test_close_ends_a_running_batch_and_refuses_new_work(scripted_engine_factory):
    from agentkit.errors import ModelError

    engine = scripted_engine_factory("x", eos=False, max_model_len=100_000)
    futures = engine.submit([GenerationRequest(prompt(engine, "x"), max_tokens=90_000, ignore_eos=True)])
    while not futures[0].running():
        time.sleep(0.01)
    engine.close()
    with pytest.raises(ModelError, match="closed"):
        futures[0].result(timeout=30)
    with pytest.raises(ModelError, match="closed"):
        engine.submit([GenerationRequest([1], max_tokens=1)])
