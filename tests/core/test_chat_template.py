"""The chat template renders exactly what the parser reads back, and marks only assistant text."""

from agentkit.chat_template import YOUTU_CHAT_TEMPLATE, template_sha256
from agentkit.records import Message, ToolCall
from agentkit.toolcalls import parse_tool_calls

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


def _conversation():
    call = ToolCall.make("call_0", "python", {"code": "print(6 * 7)", "note": "ünïcode"})
    return [
        Message(role="system", content="Be careful."),
        Message(role="user", content="6*7?"),
        Message(role="assistant", content="<think>Plan: use python.</think>", tool_calls=[call]),
        Message(role="tool", tool_call_id="call_0", name="python", content="42"),
        Message(role="assistant", content="\\boxed{42}"),
    ]


def test_rendered_calls_parse_back(tiny_tokenizer):
    messages = [m.model_dump(exclude_none=True) for m in _conversation()]
    text = tiny_tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    assert text.startswith("<|begin_of_text|>Be careful.\n\n# Tools")
    reply = text.split("<|Assistant|>")[1].split("<|end_of_text|>")[0]
    parsed = parse_tool_calls(reply)
    assert parsed.content == "<think>Plan: use python.</think>"
    assert parsed.tool_calls == _conversation()[2].tool_calls
    assert "<|User|><tool_response>42</tool_response><|Assistant|>" in text


def test_assistant_mask_covers_only_replies(tiny_tokenizer):
    messages = [m.model_dump(exclude_none=True) for m in _conversation()]
    enc = tiny_tokenizer.apply_chat_template(
        messages, tools=TOOLS, return_dict=True, return_assistant_tokens_mask=True
    )
    trained = tiny_tokenizer.decode(
        [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m],
        skip_special_tokens=False,
    )
    assert "6*7?" not in trained and "42</tool_response>" not in trained and "Be careful" not in trained
    assert trained.count("<|end_of_text|>") == 2 and "\\boxed{42}" in trained


def test_template_hash_is_stable(tiny_tokenizer):
    assert tiny_tokenizer.chat_template == YOUTU_CHAT_TEMPLATE
    assert template_sha256() == template_sha256(tiny_tokenizer.chat_template)
    assert template_sha256("x") != template_sha256()
