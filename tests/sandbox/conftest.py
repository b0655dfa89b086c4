"""Backends under test: ``bwrap`` always, ``docker`` when a Docker-API socket answers (Podman in CI)."""

from __future__ import annotations

import functools
import os
import shutil

import pytest

from agentkit.envs.sandbox.conformance import Harness


def _unavailable(reason: str) -> None:
    """Skip, unless CI said the backend must be there (AGENTKIT_REQUIRE_SANDBOXES=1): then fail."""
    if os.environ.get("AGENTKIT_REQUIRE_SANDBOXES") == "1":
        pytest.fail(f"required sandbox backend unavailable: {reason}")
    pytest.skip(reason)


@functools.cache
def docker_reason() -> str | None:
    """None when a Docker-API socket is reachable, else why not."""
    from agentkit.envs.sandbox.docker import socket_status

    ok, reason = socket_status()
    return None if ok else reason


BACKENDS = [
    pytest.param("bwrap", marks=[pytest.mark.bwrap]),
    pytest.param("bwrap-zygote", marks=[pytest.mark.bwrap]),  # sessions forked from the zygote
    pytest.param("docker", marks=[pytest.mark.docker]),
]


@pytest.fixture(params=BACKENDS)
def harness(request) -> Harness:
    backend = request.param
    if backend.startswith("bwrap") and shutil.which("bwrap") is None:
        _unavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    if backend == "docker":
        reason = docker_reason()
        if reason:
            _unavailable(f"no Docker-API socket reachable: {reason}")
    if backend == "bwrap-zygote":
        return Harness("bwrap", {"zygote": True})
    return Harness(backend)


@pytest.fixture
def need_docker() -> None:
    reason = docker_reason()
    if reason:
        _unavailable(f"no Docker-API socket reachable: {reason}")
