import json

import jsonschema
import pytest
from pydantic import ValidationError

from agentkit.records import Message, Status, Task, ToolCall, ToolSpec, Trajectory, Verdict
from agentkit.schemas import TRAJECTORY_SCHEMA, load_trajectory_schema, render


def _trajectory(**overrides) -> Trajectory:
    base = dict(
        id="math/t1/s0",
        task=Task(id="t1", env="math", prompt="What is 37*48-125?", meta={"answer": "1651"}),
        tools=[
            ToolSpec.model_validate(
                {
                    "type": "function",
                    "function": {
                        "name": "python",
                        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
                    },
                }
            )
        ],
        messages=[
            Message(role="user", content="What is 37*48-125?"),
            Message(
                role="assistant",
                content="<think>compute</think>",
                tool_calls=[ToolCall.make("call_0", "python", {"code": "print(37*48-125)"})],
            ),
            Message(role="tool", tool_call_id="call_0", name="python", content="1651"),
            Message(role="assistant", content="\\boxed{1651}"),
        ],
        status=Status.completed,
        reward=1.0,
        verdict=Verdict(passed=True, reward=1.0, reason="ok"),
    )
    return Trajectory(**(base | overrides))


def test_schema_file_agrees_with_models():
    assert TRAJECTORY_SCHEMA.read_text() == render(), (
        "run `python -m agentkit.schemas` after changing records"
    )


def test_serialized_trajectory_validates_against_schema():
    record = json.loads(_trajectory().to_json())
    jsonschema.validate(record, load_trajectory_schema())
    assert Trajectory.model_validate(record) == _trajectory()


def test_schema_rejects_unknown_status_and_extra_fields():
    schema = load_trajectory_schema()
    record = json.loads(_trajectory().to_json())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record | {"status": "exploded"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record | {"surprise": 1}, schema)
    with pytest.raises(ValidationError):
        Trajectory.model_validate(record | {"surprise": 1})


def test_tool_call_arguments_are_json_strings():
    call = ToolCall.make("c", "python", {"code": "x = None"})
    assert isinstance(call.function.arguments, str)
    assert call.function.parsed_arguments() == {"code": "x = None"}


def test_infrastructure_statuses():
    assert {s for s in Status if s.is_infrastructure} == {
        Status.model_error,
        Status.sandbox_error,
        Status.verifier_error,
    }
