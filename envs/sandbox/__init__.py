"""Sandbox backends (``bwrap``, ``docker``) registered in ``agentkit.registry.SANDBOXES``, and the
``SandboxPool`` that hands out pre-warmed sandboxes."""

from agentkit.envs.sandbox import bwrap, docker  # noqa: F401  (registers the backends)
from agentkit.envs.sandbox.pool import SandboxPool

__all__ = ["SandboxPool"]
