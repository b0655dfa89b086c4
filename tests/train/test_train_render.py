"""Loss masks computed from the chat template by rendering prefixes: no user, system or tool token is ever trained."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.chat_template import YOUTU_CHAT_TEMPLATE
from agentkit.errors import DataError
from agentkit.train.render import IGNORE, LossPolicy, render_conversation, render_text

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run Python",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
        },
    }
]
UNMARKED = YOUTU_CHAT_TEMPLATE.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
# A ChatML-style template without generation markers, whose role headers are plain text (not special tokens),
# so BPE merges can straddle a turn boundary.
CHATML = (
    "{%- for m in messages -%}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + (m['content'] or '') -}}"
    "{%- if m['tool_calls'] -%}{%- for c in m['tool_calls'] -%}"
    "{{- '\\n<tool_call>' + c['function']['name'] + ' ' + c['function']['arguments'] + '</tool_call>' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

ASSISTANT_TEXT = st.text(alphabet="abcdefghijklmnop qrst.,!?()\n<>/{}=+-", min_size=0, max_size=30)
OTHER_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,\n", min_size=1, max_size=30)


@st.composite
def conversations(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(OTHER_TEXT)})
    for turn in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(OTHER_TEXT)})
        for call in range(draw(st.integers(0, 2))):
            code = draw(st.text(alphabet="abcxyz+*() 0123456789", min_size=1, max_size=12))
            args = '{"code": "' + code + '"}'
            messages.append(
                {
                    "role": "assistant",
                    "content": draw(ASSISTANT_TEXT),
                    "tool_calls": [
                        {
                            "id": f"c{turn}{call}",
                            "type": "function",
                            "function": {"name": "python", "arguments": args},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": f"c{turn}{call}", "content": draw(OTHER_TEXT)})
        messages.append({"role": "assistant", "content": draw(ASSISTANT_TEXT)})
    return messages


def _trained_text(tokenizer, example) -> list[str]:
    runs, run = [], []
    for token, label in zip(example["input_ids"], example["labels"], strict=True):
        if label != IGNORE:
            run.append(token)
        elif run:
            runs.append(tokenizer.decode(run, skip_special_tokens=False))
            run = []
    if run:
        runs.append(tokenizer.decode(run, skip_special_tokens=False))
    return runs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_mask_equals_generation_markers_even_without_them(tiny_tokenizer, messages):
    """The mask from prefix rendering equals transformers' {% generation %} mask, with or without the markers."""
    tools = TOOLS if any(m.get("tool_calls") for m in messages) else None
    reference = tiny_tokenizer.apply_chat_template(
        messages, tools=tools, return_dict=True, return_assistant_tokens_mask=True
    )
    for template in (YOUTU_CHAT_TEMPLATE, UNMARKED):
        example = render_conversation(tiny_tokenizer, messages, tools, chat_template=template)
        assert example["input_ids"] == list(reference["input_ids"])
        assert [int(label != IGNORE) for label in example["labels"]] == list(reference["assistant_masks"])
        assert all(
            label in (IGNORE, token)
            for token, label in zip(example["input_ids"], example["labels"], strict=True)
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_unmarked_chatml_never_trains_on_other_roles(tiny_tokenizer, messages):
    """Assistant text is lowercase, every other role's text uppercase: no trained token holds an uppercase letter,
    even where BPE merges across a turn boundary (a straddling token is left untrained)."""
    example = render_conversation(tiny_tokenizer, messages, None, chat_template=CHATML)
    trained = "".join(_trained_text(tiny_tokenizer, example))
    assert not any(ch.isupper() for ch in trained), trained
    assert "im_start" not in trained and "user" not in trained and "system" not in trained
    longest = max(len(m["content"]) for m in messages if m["role"] == "assistant")
    assert longest < 10 or len(trained) >= longest - 4


def test_non_prefix_stable_template_is_refused(tiny_tokenizer):
    """A template that renders history differently than the last turn cannot give a sound mask: a clear error."""
    template = (
        "{%- for m in messages -%}{%- if loop.last -%}{{ m['role'] + ': ' + m['content'] + '\\n' }}"
        "{%- else -%}{{ m['role'][0] + '> ' + m['content'] + '\\n' }}{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}assistant: {%- endif -%}"
    )
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(DataError, match="prefix-stable"):
        render_conversation(tiny_tokenizer, messages, chat_template=template)


def test_midtrain_policy_masks_tool_observations_only(tiny_tokenizer):
    messages = [
        {"role": "system", "content": "SYSTEM"},
        {"role": "user", "content": "QUESTION"},
        {
            "role": "assistant",
            "content": "plan",
            "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": "python", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "OBSERVATION"},
        {"role": "assistant", "content": "done"},
    ]
    policy = LossPolicy.of(["system", "user", "assistant"], template=True)
    runs = _trained_text(tiny_tokenizer, render_conversation(tiny_tokenizer, messages, TOOLS, policy))
    trained = "".join(runs)
    assert "SYSTEM" in trained and "QUESTION" in trained and "plan" in trained and "done" in trained
    assert "OBSERVATION" not in trained and "<tool_response>" not in trained
    assert runs[0].startswith("<|begin_of_text|>") and len(runs) == 2
    everything = LossPolicy.of(["system", "user", "assistant", "tool"], template=True)
    example = render_conversation(tiny_tokenizer, messages, TOOLS, everything)
    assert example["labels"] == example["input_ids"]


def test_text_documents_are_framed_and_fully_trained(tiny_tokenizer):
    example = render_text(tiny_tokenizer, "Water boils at 100 degrees.")
    assert example["input_ids"][0] == tiny_tokenizer.bos_token_id
    assert example["input_ids"][-1] == tiny_tokenizer.eos_token_id
    assert example["labels"] == example["input_ids"]
