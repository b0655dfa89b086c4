"""Environments (math, code, tool use, research) and sandbox backends. Envs register by name in
``agentkit.registry.ENVS``; sandbox backends in ``SANDBOXES``."""
