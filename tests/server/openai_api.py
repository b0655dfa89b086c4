"""Request pieces the HTTP API tests share: the ``python`` tool in the OpenAI wire format, a user turn,
and the official ``openai`` client pointed at a test server."""

from __future__ import annotations

import openai

PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
}
USER = [{"role": "user", "content": "What is 6*7?"}]


def openai_client(url: str) -> openai.OpenAI:
    """The official client on ``url`` (the server root); no retries, so a failure shows at once."""
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
