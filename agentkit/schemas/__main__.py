from agentkit.schemas import TRAJECTORY_SCHEMA, render

TRAJECTORY_SCHEMA.write_text(render())
print(f"wrote {TRAJECTORY_SCHEMA}")
