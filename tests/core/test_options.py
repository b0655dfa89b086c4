"""Env, strategy and sandbox options are checked against the constructor's signature before it runs."""

import pytest

from agentkit.config import EnvConfig
from agentkit.env import build_env
from agentkit.errors import ConfigError
from agentkit.registry import Registry, accepted_options, check_options
from agentkit.synth.strategies import build_strategy


class Base:
    def __init__(self, **options):
        if options:
            raise TypeError(f"unexpected options: {', '.join(options)}")


class Child(Base):
    def __init__(self, sandbox=None, *, temperature: float = 1.0, max_retries: int = 2, **rest):
        super().__init__(**rest)
        if temperature < 0:
            raise TypeError("a bug inside the constructor")


class Forwarding(Child):
    def __init__(self, window: int = 4, **rest):
        super().__init__(**rest)


class Backend:
    OPTIONS = {"image": "python:3.11", "socket": None}

    def __init__(self, limits=None, **options):
        self.options = options


def test_accepted_options_follow_the_signature_down_the_bases():
    assert accepted_options(Base) == set()
    assert accepted_options(Child) == {"sandbox", "temperature", "max_retries"}
    assert accepted_options(Forwarding) == {"window", "sandbox", "temperature", "max_retries"}
    assert accepted_options(Backend) == {"limits", "image", "socket"}
    assert accepted_options(lambda a, **kw: None) is None


def test_unknown_option_names_the_key_and_the_nearest_valid_one():
    registry: Registry = Registry("widget")
    registry.register("child")(Child)
    with pytest.raises(
        ConfigError,
        match=r"^widget.options for 'child': unknown option 'max_retry'; "
        r"did you mean 'max_retries'\? \(known: max_retries, temperature\)$",
    ):
        registry.build("child", {"max_retry": 3}, where="widget.options", sandbox=None)
    with pytest.raises(ConfigError, match="unknown option 'sandbox'"):
        check_options(Child, {"sandbox": 1}, where="x", fixed={"sandbox": None})
    assert registry.build("child", {"max_retries": 3}, where="widget.options").__class__ is Child


def test_a_type_error_inside_a_constructor_is_a_bug_not_a_config_error():
    registry: Registry = Registry("widget")
    registry.register("child")(Child)
    with pytest.raises(TypeError, match="a bug inside the constructor"):
        registry.build("child", {"temperature": -1.0}, where="widget.options")


def test_real_envs_and_strategies_check_their_options():
    with pytest.raises(
        ConfigError,
        match=r"env.options for 'math': unknown option 'answer_fromat'; "
        r"did you mean 'answer_format'\?",
    ):
        build_env(EnvConfig(name="math", options={"answer_fromat": ["boxed"]}))
    with pytest.raises(
        ConfigError,
        match=r"strategy.options for 'reflect': unknown option 'max_retry'; "
        r"did you mean 'max_retries'\?",
    ):
        build_strategy("reflect", {"max_retry": 2})
    with pytest.raises(
        ConfigError, match=r"strategy.options for 'direct': unknown option 'temperature' .known: none"
    ):
        build_strategy("direct", {"temperature": 1})


def test_a_sandbox_option_typo_fails_when_the_env_is_built():
    from agentkit.config import SandboxConfig

    with pytest.raises(
        ConfigError,
        match=r"env.sandbox.options for 'bwrap': unknown option 'tmp_mbb'; "
        r"did you mean 'tmp_mb'\?",
    ):
        build_env(EnvConfig(name="math", sandbox=SandboxConfig(backend="bwrap", options={"tmp_mbb": 64})))
