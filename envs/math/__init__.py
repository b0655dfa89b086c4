"""The math env (registered as ``math``): sandboxed Python tool, procedural tasks, math-verify verdicts."""

from agentkit.registry import ENVS
from agentkit.envs.math.env import MathEnv, MathEpisode

ENVS.register("math")(MathEnv)

__all__ = ["MathEnv", "MathEpisode"]
