"""The tool-use env (registered as ``tooluse``): simulated file system, shop and calendar behind
JSON-schema tools, generated tasks with reference solvers, and BFCL function calling."""

from agentkit.envs.tooluse.env import ToolUseEnv, ToolUseEpisode
from agentkit.registry import ENVS

ENVS.register("tooluse")(ToolUseEnv)

__all__ = ["ToolUseEnv", "ToolUseEpisode"]
