"""``@tool``: a tool declared once, as a typed function; its JSON schema comes from the signature and docstring.

    class Shop(Simulator):
        @tool
        def find_customer(self, query: str) -> dict:
            '''Find a customer by exact name or email.

            Args:
                query: Full name or email address
            '''

The summary above ``Args:`` is the description; each ``name: text`` line under ``Args:`` describes a
parameter. Types map to JSON schema (``str`` string, ``int`` integer, ``float`` number, ``bool`` boolean,
``list[X]`` array of X, ``dict`` object, ``Literal[...]`` enum, ``X | None`` optional X); a parameter
without a default is required; a default other than None is stated. ``params={"k": {...}}`` gives a
parameter's schema outright where it needs more (bounds, patterns, nested objects). Extra arguments are
refused (``additionalProperties: false``): the agent loop validates each call against the schema.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from agentkit.env import Tool
from agentkit.records import FunctionSpec, ToolSpec

F = TypeVar("F", bound=Callable[..., Any])

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")


def _type_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint (without description); ``Any`` or an unknown type is unconstrained."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _type_schema(rest[0]) if len(rest) == 1 else {}
    if origin is typing.Literal:
        kinds = {_SCALARS.get(type(a)) for a in args}
        return (
            {"type": kinds.pop(), "enum": list(args)}
            if len(kinds) == 1 and None not in kinds
            else {"enum": list(args)}
        )
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        items = _type_schema(args[0]) if args else {}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if hint is dict or origin in (dict, Mapping, typing.Mapping):
        return {"type": "object"}
    return {}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google-style docstring; each folded to one line."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, list[str]] = {}
    section, current, indent = None, None, None
    for line in lines:
        heading = _SECTION.match(line)
        if heading:
            section, current, indent = heading.group(1), None, None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters") and line.strip():
            depth = len(line) - len(line.lstrip())
            match = re.match(r"^\s*\*{0,2}(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$", line)
            if match and (indent is None or depth <= indent):
                indent, current = depth, match.group(1)
                params[current] = [match.group(2)]
            elif current is not None:
                params[current].append(line.strip())
    return " ".join(" ".join(summary).split()), {k: " ".join(" ".join(v).split()) for k, v in params.items()}


def function_schema(
    fn: Callable[..., Any],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON-schema ``parameters`` object of ``fn`` (``self`` and ``cls`` left out)."""
    hints = typing.get_type_hints(fn)
    docs = {**parse_docstring(fn.__doc__)[1], **(descriptions or {})}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(fn).parameters.items():
        if name in ("self", "cls") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if params and name in params:
            properties[name] = dict(params[name])
        else:
            schema = _type_schema(hints.get(name, Any))
            enum = schema.pop("enum", None)
            if name in docs:
                schema["description"] = docs[name]
            if enum is not None:
                schema["enum"] = enum
            if parameter.default is not inspect.Parameter.empty and parameter.default is not None:
                schema["default"] = parameter.default
            properties[name] = schema
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    unknown = sorted(set(params or {}) - set(properties))
    if unknown:
        raise TypeError(f"@tool {fn.__name__}: params for unknown parameters {unknown}")
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """Declare ``fn`` (a function or a method) as a tool; ``spec_of(fn)`` is its ``ToolSpec``.

    Use bare (``@tool``) or with ``name=`` (when the tool's name is not the function's), ``description=``
    (instead of the docstring's summary) or ``params=`` (schemas given outright).
    """

    def declare(fn: F) -> F:
        summary, _ = parse_docstring(fn.__doc__)
        text = description if description is not None else summary
        if not text:
            raise TypeError(f"@tool {fn.__name__}: needs a docstring or description=")
        fn.__tool__ = ToolSpec(
            function=FunctionSpec(  # type: ignore[attr-defined]
                name=name or fn.__name__, description=text, parameters=function_schema(fn, params=params)
            )
        )
        return fn

    return declare(fn) if fn is not None else declare


def spec_of(fn: Callable[..., Any]) -> ToolSpec:
    """The ``ToolSpec`` that ``@tool`` declared on ``fn`` (a function, or a bound or unbound method)."""
    spec = getattr(fn, "__tool__", None)
    if spec is None:
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not declared with @tool")
    return spec


def as_tool(fn: Callable[..., Any]) -> Tool:
    """A runnable ``Tool`` for a ``@tool`` function or bound method."""
    spec = spec_of(fn)
    return Tool(spec.function.name, spec.function.description or "", spec.function.parameters, fn)


def declared(owner: Any) -> list[Callable[..., Any]]:
    """The ``@tool`` methods of a class or an instance, sorted by tool name."""
    cls = owner if isinstance(owner, type) else type(owner)
    found = [
        getattr(owner, attr)
        for attr in dir(cls)  # the class's attributes: no property runs
        if not attr.startswith("__")
        and getattr(inspect.getattr_static(cls, attr), "__tool__", None) is not None
    ]
    return sorted(found, key=lambda fn: spec_of(fn).name)


def specs(owner: Any) -> list[ToolSpec]:
    """The ``ToolSpec`` of every ``@tool`` method of a class or an instance, sorted by name."""
    return [spec_of(fn) for fn in declared(owner)]


def tools(owner: Any, wrap: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None) -> list[Tool]:
    """Runnable tools for every ``@tool`` method of an instance; ``wrap`` adapts each bound method."""
    out = []
    for fn in declared(owner):
        spec = spec_of(fn)
        out.append(
            Tool(
                spec.function.name,
                spec.function.description or "",
                spec.function.parameters,
                wrap(fn) if wrap else fn,
            )
        )
    return out
