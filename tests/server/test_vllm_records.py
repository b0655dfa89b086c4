"""Token-faithful records and slow servers, without vLLM: the generated text and the tool-call agreement taken
from a vLLM-shaped response, the re-tokenization check training runs on them, and a request that times out being
an infrastructure failure (never the agent's ``timeout``)."""

from __future__ import annotations

import asyncio
import json

from core.toy_env import AddEnv, add_task

from agentkit.client import ScriptedClient
from agentkit.loop import EpisodeLimits, run_episode
from agentkit.openai_client import completion_from_response, tool_calls_agree
from agentkit.records import Status
from agentkit.toolcalls import parse_tool_calls


def vllm_response(tokens: list[str], tool_calls: list[dict] | None, content: str | None) -> dict:
    """A chat completion as vLLM sends it with ``logprobs`` and ``return_token_ids`` (hermes parser on)."""
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"chatcmpl-tool-{i}", "type": "function", "function": call}
            for i, call in enumerate(tool_calls)
        ]
    return {
        "model": "m",
        "prompt_token_ids": [1, 2, 3],
        "usage": {"prompt_tokens": 3, "completion_tokens": len(tokens)},
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "token_ids": list(range(10, 10 + len(tokens))),
                "logprobs": {"content": [{"token": t, "logprob": -0.5} for t in tokens]},
            }
        ],
    }


TOKENS = [
    "<think>",
    "plan",
    "</think>",
    "<tool_call>",
    '{"name": "add", ',
    '"arguments": {"a": 2, "b": 3}}',
    "</tool_call>",
    "<|end_of_text|>",
]


def test_generated_text_and_agreeing_calls():
    data = vllm_response(TOKENS, [{"name": "add", "arguments": '{"a": 2, "b": 3}'}], "<think>plan</think>")
    completion = completion_from_response(data, check_tools=True)
    assert completion.generated_text == "".join(TOKENS)
    assert completion.token_ids == list(range(10, 18)) and completion.logprobs == [-0.5] * 8
    assert completion.tool_call_agreement is True and completion.message.tool_calls[0].name == "add"
    assert completion_from_response(data).tool_call_agreement is None  # no tools offered: nothing to check


def test_a_parser_that_alters_drops_or_invents_a_call_disagrees():
    altered = vllm_response(TOKENS, [{"name": "add", "arguments": '{"a": 2, "b": 4}'}], "<think>plan</think>")
    assert completion_from_response(altered, check_tools=True).tool_call_agreement is False
    dropped = vllm_response(TOKENS, None, "".join(TOKENS))  # the server left the call in the text
    assert completion_from_response(dropped, check_tools=True).tool_call_agreement is False
    invented = vllm_response(
        ["The", " answer", " is 5"], [{"name": "add", "arguments": "{}"}], "The answer is 5"
    )
    assert completion_from_response(invented, check_tools=True).tool_call_agreement is False
    # Argument formatting is not a disagreement: decoded JSON is compared.
    calls = parse_tool_calls('<tool_call>{"name": "add", "arguments": {"b":3,"a":2}}</tool_call>').tool_calls
    assert tool_calls_agree(calls, "".join(TOKENS))


def test_token_ids_without_text_leave_the_agreement_unchecked():
    data = vllm_response(["token_id:5", "token_id:6"], None, "hi")
    completion = completion_from_response(data, check_tools=True)
    assert completion.token_ids == list(range(10, 12)) and completion.generated_text is None
    assert completion.tool_call_agreement is None


def test_retokenize_mismatches_counts_turns_not_found_in_order():
    from agentkit.train.data import retokenize_mismatches

    rendered = [1, 2, 10, 11, 12, 3, 4, 20, 21, 5]
    assert retokenize_mismatches(rendered, [[10, 11, 12], [20, 21]]) == 0
    assert retokenize_mismatches(rendered, [[10, 11, 13], [20, 21]]) == 1
    assert retokenize_mismatches(rendered, [[20, 21], [10, 11, 12]]) == 1  # out of order
    assert retokenize_mismatches(rendered, [[]]) == 1


def _split_finer(tokenizer, text: str) -> list[int]:
    """``text`` tokenized one pre-token piece per character: the same text, not the tokenizer's own split."""
    ids = []
    for char in text:
        ids += tokenizer(char, add_special_tokens=False)["input_ids"]
    return ids


def test_training_keeps_a_sampled_split_of_the_rendered_text(tiny_tokenizer):
    """A turn sampled as another split of the text the template renders is trained on the sampled ids (what the
    model generated), not re-tokenized; a turn whose text re-renders differently keeps the tokenizer's ids and
    is counted as a mismatch; ``keep_sampled=False`` re-tokenizes both and counts both."""
    from agentkit.train.data import render_item
    from agentkit.train.render import IGNORE, LossPolicy, render_conversation
    from agentkit.train.sources import Item, SourceStats

    tok = tiny_tokenizer
    call = {"name": "add", "arguments": {"a": 2, "b": 3}}
    reply = (
        '<think>plan the sum</think>\n<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
    )
    messages = [
        {"role": "user", "content": "add 2 and 3"},
        {
            "role": "assistant",
            "content": "<think>plan the sum</think>",
            "tool_calls": [{"type": "function", "function": {**call, "arguments": '{"a": 2, "b": 3}'}}],
        },
        {"role": "tool", "content": "5"},
        {"role": "assistant", "content": "The sum is 5."},
    ]
    first = _split_finer(tok, reply) + [tok.eos_token_id]
    assert first != tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    second = _split_finer(tok, "The sum is five.") + [tok.eos_token_id]  # the record says "5."
    policy = LossPolicy()

    stats = SourceStats("main")
    example = render_item(Item("x", messages=messages, sampled=[first, second]), tok, policy, stats)
    assert (stats.sampled_turns, stats.retokenize_mismatches, stats.kept_sampled_splits) == (2, 1, 1)
    ids = example["input_ids"]
    at = next(i for i in range(len(ids)) if ids[i : i + len(first)] == first)
    assert example["labels"][at : at + len(first)] == first  # trained on, as sampled
    assert example["labels"][at - 1] == IGNORE  # the role marker is not
    assert tok.decode(example["input_ids"], skip_special_tokens=False) == tok.apply_chat_template(
        messages, tokenize=False
    )
    canonical = render_conversation(tok, messages)
    tail = len(canonical["input_ids"]) - (at + len(tok(reply, add_special_tokens=False)["input_ids"]) + 1)
    # The second turn (its text differs from what was sampled): the tokenizer's ids.
    assert example["input_ids"][-tail:] == canonical["input_ids"][-tail:]
    assert example["labels"][-tail:] == canonical["labels"][-tail:]

    stats = SourceStats("main")
    example = render_item(Item("x", messages=messages, sampled=[first, second]), tok, policy, stats, False)
    assert example == canonical
    assert (stats.sampled_turns, stats.retokenize_mismatches, stats.kept_sampled_splits) == (2, 2, 0)

    # Not one sampled turn per assistant message: nothing is kept, the turns are looked up as before.
    stats = SourceStats("main")
    assert render_item(Item("x", messages=messages, sampled=[first]), tok, policy, stats) == canonical
    assert (stats.sampled_turns, stats.retokenize_mismatches, stats.kept_sampled_splits) == (1, 1, 0)


def test_a_request_timing_out_inside_the_client_is_a_model_error():
    trajectory = asyncio.run(
        run_episode(
            AddEnv(),
            add_task(),
            ScriptedClient([TimeoutError("read timed out")]),
            limits=EpisodeLimits(max_seconds=60),
        )
    )
    assert trajectory.status == Status.model_error and trajectory.status.is_infrastructure
    assert trajectory.reward is None and "timed out" in trajectory.error


def test_only_the_episode_wall_time_is_the_agents_timeout():
    async def slow(_messages):
        await asyncio.sleep(5)

    class Slow(ScriptedClient):
        async def complete(self, messages, tools=None, sampling=None):
            await slow(messages)

    trajectory = asyncio.run(
        run_episode(AddEnv(), add_task(), Slow([]), limits=EpisodeLimits(max_seconds=0.2))
    )
    assert trajectory.status == Status.timeout and trajectory.reward == 0.0


def test_openai_client_timeouts_end_as_infrastructure_failures(serve_app):
    """A server slower than ``model.timeout`` on every retry: ``model_error`` (retried by synth, then written to
    failures), not a ``timeout`` with reward 0."""
    from fastapi import FastAPI

    from agentkit.openai_client import OpenAIClient

    app = FastAPI()
    calls = []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        calls.append(body)
        await asyncio.sleep(3)
        return {}

    with serve_app(app) as url:
        client = OpenAIClient(
            url + "/v1", "m", timeout=0.3, max_retries=1, backoff_base=0.01, backoff_max=0.02
        )
        trajectory = asyncio.run(
            run_episode(AddEnv(), add_task(), client, limits=EpisodeLimits(max_seconds=60))
        )
    assert len(calls) == 2 and trajectory.status == Status.model_error and trajectory.reward is None
    assert "timed out" in trajectory.error and json.dumps(trajectory.verdict) == "null"
