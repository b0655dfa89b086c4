"""Registries by stable name, so a user's YAML survives module renames.

A registry knows the built-in modules that fill it and imports them on first lookup; third-party
packages add entries through the entry-point group ``agentkit.<kind>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from agentkit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._modules = modules
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
        for module in self._modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency, not an optional built-in
                    raise
        for entry in entry_points(group=f"agentkit.{self.kind}"):
            self._entries.setdefault(entry.name, entry.load())

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


SANDBOXES: Registry = Registry("sandbox", ("envs.sandbox",))
ENVS: Registry = Registry("env", ("envs.math", "envs.code", "envs.tooluse", "envs.research"))
STRATEGIES: Registry = Registry("strategy", ("synth.strategies",))
