"""agentkit: sandboxed agentic environments, trajectory synthesis and MLA mid-training."""

from agentkit.errors import (
    AgentkitError,
    ConfigError,
    ContextExceeded,
    DataError,
    ModelError,
    SandboxUnavailable,
    ToolError,
    VerifierError,
)
from agentkit.records import (
    FunctionCall,
    FunctionSpec,
    Message,
    Provenance,
    Stats,
    Status,
    Task,
    ToolCall,
    ToolSpec,
    Trajectory,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "AgentkitError",
    "ConfigError",
    "ContextExceeded",
    "DataError",
    "ModelError",
    "SandboxUnavailable",
    "ToolError",
    "VerifierError",
    "FunctionCall",
    "FunctionSpec",
    "Message",
    "Provenance",
    "Stats",
    "Status",
    "Task",
    "ToolCall",
    "ToolSpec",
    "Trajectory",
    "Verdict",
    "__version__",
]
