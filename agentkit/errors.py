"""One exception type per boundary. The agent loop turns each into a trajectory ``status``."""

from __future__ import annotations


class AgentkitError(Exception):
    """Base of every error agentkit raises on purpose."""


class ConfigError(AgentkitError):
    """A configuration that cannot work: names the key and what is wrong."""


class DataError(AgentkitError):
    """Bad input data; names the file and line so the user can fix it."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.reason = path, line, message
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message)


class ModelError(AgentkitError):
    """The model server failed (transport, 5xx, timeout) after retries: infrastructure, not the agent."""


class ContextExceeded(ModelError):
    """The conversation no longer fits the model's context window."""


class SandboxUnavailable(AgentkitError):
    """The sandbox itself cannot be used (backend missing, container gone). Exec never raises otherwise."""


class ToolError(AgentkitError):
    """A tool call the model got wrong; its message becomes the observation the model sees."""


class VerifierError(AgentkitError):
    """The verifier itself failed; the episode is not scored rather than scored 0."""
