"""Registries by stable name, so a user's YAML survives module renames.

Entries come from the entry-point group ``agentkit.<kind>`` (built-ins are declared in agentkit's own
``pyproject.toml``, exactly as a third-party package declares its own), loaded on first lookup, and from
``Registry.register`` for objects defined at run time (tests, notebooks).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, cast

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

    def build(self, name: str, options: Mapping[str, Any] | None = None, *, where: str, **fixed: Any) -> T:
        """``get(name)(**fixed, **options)`` once ``options`` are checked against the factory's signature.

        An unknown option is a ``ConfigError`` naming ``where`` (the config key of the options) and the nearest
        valid option, raised before anything is built. A ``TypeError`` from inside the constructor is a bug
        in it, not in the config, and propagates as it is.
        """
        factory = self.get(name)
        options = dict(options or {})
        build = cast(Callable[..., T], factory)
        check_options(build, options, where=f"{where} for '{name}'", fixed=fixed)
        return build(**fixed, **options)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


SANDBOXES: Registry = Registry("sandbox")
ENVS: Registry = Registry("env")
STRATEGIES: Registry = Registry("strategy")


def accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """The keyword options ``factory`` takes, or None when it takes any.

    A class's ``**options`` passed on to its base counts its base's options too; a class with an ``OPTIONS``
    mapping (the sandbox backends) takes those names; ``object`` takes none, so a base class whose
    ``__init__(**options)`` only exists to refuse them closes the set.
    """
    if not inspect.isclass(factory):
        try:
            parameters = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    names: set[str] = set()
    declared = getattr(factory, "OPTIONS", None)
    if isinstance(declared, Mapping):
        names |= set(declared)
    for klass in factory.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return names
        parameters = list(inspect.signature(init).parameters.values())[1:]
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
        if not var_keyword or isinstance(declared, Mapping):
            return names
    return names


def check_options(
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    where: str,
    fixed: Mapping[str, Any] | None = None,
) -> None:
    """A ``ConfigError`` for the first option ``factory`` does not take, naming the nearest one it does."""
    known = accepted_options(factory)
    if known is None:
        return
    known -= set(fixed or {})
    for key in options:
        if key not in known:
            nearest = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
            listing = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{where}: unknown option '{key}'{hint} (known: {listing})")
