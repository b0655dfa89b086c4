"""The Youtu-style chat template: one Jinja text renders trajectories for generation and for training.

``<|begin_of_text|>{system}[tool block]<|User|>{query}<|Assistant|>{reply}<|end_of_text|>``, with
reasoning in ``<think>``, calls as ``<tool_call>{json}</tool_call>`` (the exact text that
``agentkit.toolcalls.render_tool_call`` writes) and results as ``<tool_response>`` blocks in a user
turn. Assistant replies are wrapped in ``{% generation %}`` so trainers can mask everything else.
Its SHA-256 is recorded in every trajectory and checked when training on it.
"""

from __future__ import annotations

import hashlib

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
USER, ASSISTANT = "<|User|>", "<|Assistant|>"
ROLE_TOKENS = [BOS, EOS, PAD, USER, ASSISTANT]
TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

TOOL_BLOCK_HEADER = (
    "# Tools\nYou may call one or more functions. Their signatures are inside <tools></tools>:\n<tools>\n"
)
TOOL_BLOCK_FOOTER = (
    '</tools>\nFor each call write <tool_call>{"name": <function-name>, "arguments": <args-json-object>}'
    "</tool_call>."
)

YOUTU_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- messages[0]['content'] -}}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- if tools -%}"
    "{%- if messages and messages[0]['role'] == 'system' and messages[0]['content'] -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{{- '" + TOOL_BLOCK_HEADER.replace("\n", "\\n") + "' -}}"
    "{%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}"
    "{{- '" + TOOL_BLOCK_FOOTER.replace('"', '\\"') + "' -}}"
    "{%- endif -%}"
    "{%- for message in rest -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- '<|User|>' + message['content'] -}}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or rest[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|User|>' -}}{%- else -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_response>' + message['content'] + '</tool_response>' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|Assistant|>' -}}"
    "{%- generation -%}"
    "{{- message['content'] if message['content'] else '' -}}"
    "{%- if message['tool_calls'] -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{%- if message['content'] or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set fn = call['function'] if call['function'] is defined else call -%}"
    "{{- '<tool_call>{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' -}}"
    "{%- if fn['arguments'] is string -%}{{- fn['arguments'] -}}{%- else -%}{{- fn['arguments'] | tojson -}}{%- endif -%}"
    "{{- '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- eos_token -}}"
    "{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|Assistant|>' -}}{%- endif -%}"
)


def template_sha256(template: str | None = None) -> str:
    """The hash recorded in trajectories; whitespace-exact, since the rendered text is."""
    return hashlib.sha256(
        (template if template is not None else YOUTU_CHAT_TEMPLATE).encode("utf-8")
    ).hexdigest()
