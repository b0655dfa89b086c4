"""Registries by stable name, so a user's YAML survives module renames.

Entries come from the entry-point group ``agentkit.<kind>`` (built-ins are declared in agentkit's own
``pyproject.toml``, exactly as a third-party package declares its own), loaded on first lookup, and from
``Registry.register`` for objects defined at run time (tests, notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from agentkit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not obj:
                raise ConfigError(f"{self.kind} '{name}' is registered twice ({existing!r} and {obj!r})")
            self._entries[name] = obj
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for entry in entry_points(group=f"agentkit.{self.kind}"):
            if entry.name not in self._entries:
                self._entries[entry.name] = entry.load()

    def get(self, name: str) -> T:
        if name not in self._entries:
            self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


SANDBOXES: Registry = Registry("sandbox")
ENVS: Registry = Registry("env")
STRATEGIES: Registry = Registry("strategy")
