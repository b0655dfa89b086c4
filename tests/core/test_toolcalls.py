import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.records import FunctionSpec, ToolCall, ToolSpec
from agentkit.toolcalls import parse_tool_calls, render_tool_call, split_reasoning, validate_call

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
calls = st.lists(
    st.tuples(names, st.dictionaries(st.text(max_size=10), json_values, max_size=4)), min_size=0, max_size=4
)
# Free text around calls: anything but the tag markers themselves.
prose = st.text(max_size=40).filter(lambda t: "<tool_call>" not in t and "</tool_call>" not in t)


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
@settings(max_examples=300, deadline=None)
@given(calls, prose, prose)
def test_render_then_parse_is_identity(specs, before, after):
    text = before + "\n".join(render_tool_call(n, a) for n, a in specs) + after
    parsed = parse_tool_calls(text)
    assert parsed.errors == []
    assert [(c.name, c.function.parsed_arguments()) for c in parsed.tool_calls] == specs
    assert [c.id for c in parsed.tool_calls] == [f"call_{i}" for i in range(len(specs))]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_parser_never_raises(text):
    parsed = parse_tool_calls(text)
    assert isinstance(parsed.content, str)


def test_malformed_json_becomes_an_error_and_stays_visible():
    text = 'ok <tool_call>{"name": "python", "arguments": {"code": }</tool_call> then ' + render_tool_call(
        "python", {"code": "1"}
    )
    parsed = parse_tool_calls(text)
    assert [c.name for c in parsed.tool_calls] == ["python"]
    assert len(parsed.errors) == 1 and "not valid JSON" in parsed.errors[0].message
    assert '"code": }' in parsed.content  # the model keeps seeing its broken call
    assert parsed.errors[0].call_id != parsed.tool_calls[0].id


def test_arguments_given_as_a_json_string():
    inner = json.dumps({"code": "print(2)"})
    parsed = parse_tool_calls(
        f'<tool_call>{{"name": "python", "arguments": {json.dumps(inner)}}}</tool_call>'
    )
    assert parsed.tool_calls[0].function.parsed_arguments() == {"code": "print(2)"}


def test_unterminated_and_non_object_calls():
    assert "unterminated" in parse_tool_calls('x <tool_call>{"name": "a"').errors[0].message
    assert "JSON object" in parse_tool_calls("<tool_call>[1, 2]</tool_call>").errors[0].message
    assert "no 'name'" in parse_tool_calls('<tool_call>{"arguments": {}}</tool_call>').errors[0].message


def test_validation_against_schema():
    spec = ToolSpec(
        function=FunctionSpec(
            name="add",
            parameters={
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "required": ["a"],
                "additionalProperties": False,
            },
        )
    )
    assert validate_call(ToolCall.make("c", "add", {"a": 1}), [spec]) is None
    assert "unknown tool 'sub'" in validate_call(ToolCall.make("c", "sub", {}), [spec])
    assert "'a' is a required property" in validate_call(ToolCall.make("c", "add", {}), [spec])
    assert "at 'a'" in validate_call(ToolCall.make("c", "add", {"a": "x"}), [spec])
    assert "Additional properties" in validate_call(ToolCall.make("c", "add", {"a": 1, "b": 2}), [spec])


def test_split_reasoning():
    assert split_reasoning("<think>plan it</think>The answer") == ("plan it", "The answer")
    assert split_reasoning("no thoughts") == ("", "no thoughts")
    assert split_reasoning("<think>cut off") == ("cut off", "")
