"""The math env (registered as ``math``): sandboxed Python tool, procedural tasks, math-verify verdicts."""

from agentkit.envs.math.env import MathEnv, MathEpisode
from agentkit.registry import ENVS

ENVS.register("math")(MathEnv)

__all__ = ["MathEnv", "MathEpisode"]
