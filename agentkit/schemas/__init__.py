"""JSON Schemas of agentkit's records. ``python -m agentkit.schemas`` rewrites them from the models."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_DIR = Path(__file__).parent
TRAJECTORY_SCHEMA = SCHEMA_DIR / "trajectory.schema.json"


def trajectory_schema() -> dict:
    """The schema generated from ``agentkit.records.Trajectory`` (the source of truth)."""
    from agentkit.records import SCHEMA_VERSION, Trajectory

    schema = Trajectory.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://agentkit.dev/schemas/trajectory-v{SCHEMA_VERSION}.json"
    return schema


def render() -> str:
    return json.dumps(trajectory_schema(), indent=2, sort_keys=True) + "\n"


def load_trajectory_schema() -> dict:
    return json.loads(TRAJECTORY_SCHEMA.read_text())
