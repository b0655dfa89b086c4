"""Docker-backend specifics: leaked containers are reaped, a missing image is a clear error."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from agentkit.errors import SandboxUnavailable
from agentkit.sandbox import create_sandbox

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("need_docker")]


def test_containers_of_dead_processes_are_reaped():
    from agentkit.envs.sandbox import docker as backend

    dead = subprocess.Popen(["true"])
    dead.wait()
    client = backend.client()
    leaked = client.containers.run(
        backend.DEFAULT_IMAGE,
        ["sleep", "infinity"],
        detach=True,
        network_mode="none",
        user=backend.KEEPER_USER,
        labels={
            backend.LABEL: "1",
            "agentkit.pid": str(dead.pid),
            "agentkit.host": backend.socketlib.gethostname(),
            "agentkit.created": "0",
        },
        ulimits=[backend_ulimit(n) for n in ("nofile", "nproc")],
    )
    try:
        assert backend.reap_containers(client) >= 1
        assert leaked.id not in {c.id for c in client.containers.list(all=True)}
    finally:
        try:
            leaked.remove(force=True)
        except Exception:  # reaped, as expected
            pass


def backend_ulimit(name: str):
    import docker

    return docker.types.Ulimit(name=name, soft=1024, hard=1024)


def test_a_missing_image_is_sandbox_unavailable():
    async def main():
        async with create_sandbox("docker", image="agentkit-no-such-image:0") as sb:
            await sb.exec(["true"])

    with pytest.raises(SandboxUnavailable, match="build_offline.sh"):
        asyncio.run(main())


def test_close_removes_the_container():
    async def main():
        sb = create_sandbox("docker")
        await sb.start()
        name = sb.name
        await sb.close()
        return name

    from agentkit.envs.sandbox import docker as backend

    name = asyncio.run(main())
    assert name not in {c.name for c in backend.client().containers.list(all=True)}
