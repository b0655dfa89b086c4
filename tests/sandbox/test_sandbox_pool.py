"""SandboxPool on the real bwrap backend: pre-warmed, never shared, cleaned up."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentkit.envs.sandbox import SandboxPool
from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.sandbox import SandboxLimits, create_sandbox

pytestmark = pytest.mark.bwrap


def test_pool_hands_out_warm_fresh_sandboxes():
    async def main():
        async with SandboxPool("bwrap", size=2) as pool:
            await pool.start()
            while pool._ready is None or pool._ready.qsize() < 2:
                await asyncio.sleep(0.05)
            started = time.monotonic()
            async with pool.sandbox() as sb:
                acquired = time.monotonic() - started
                session = await sb.python()
                first = await session.run("import sys\nsecret = 'episode-1'\n'sympy' in sys.modules")
                await sb.write_file("mine.txt", "1")
                workspace = sb.workspace
            assert not workspace.exists(), "the sandbox was not removed after its episode"
            async with pool.sandbox() as sb2:
                assert sb2 is not sb
                leaked = await (await sb2.python()).run("secret")
                listing = await sb2.exec(["ls", "-A"])
            return acquired, first, leaked, listing

    acquired, first, leaked, listing = asyncio.run(main())
    assert first.ok and first.stdout.strip() == "True"
    assert acquired < 0.5, f"acquiring a pre-warmed sandbox took {acquired:.2f} s"
    assert leaked.status.value == "error" and "NameError" in leaked.stderr
    assert listing.ok and listing.stdout == ""


def test_pool_is_cheap_to_create_and_serves_more_than_its_size():
    async def main():
        pool = SandboxPool("bwrap", size=1, warm_python=False)
        assert pool._ready is None and not pool._pending  # nothing started before first use

        async def episode(i: int) -> str:
            async with pool.sandbox() as sb:
                return (await sb.exec(["echo", str(i)])).stdout.strip()

        try:
            return await asyncio.gather(*(episode(i) for i in range(5)))
        finally:
            await pool.close()

    assert asyncio.run(main()) == [str(i) for i in range(5)]


def test_pool_cleans_up_when_the_body_raises():
    async def main():
        async with SandboxPool("bwrap", size=1, warm_python=False) as pool:
            with pytest.raises(RuntimeError):
                async with pool.sandbox() as sb:
                    workspace = sb.workspace
                    raise RuntimeError("episode failed")
            return workspace

    assert not asyncio.run(main()).exists()


def test_pool_reports_a_broken_backend():
    async def main():
        async with SandboxPool("bwrap", size=1, warm_python=False, bwrap="/nonexistent/bwrap") as pool:
            async with pool.sandbox() as sb:
                await sb.exec(["true"])

    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        asyncio.run(main())


def test_unknown_option_names_the_key():
    with pytest.raises(ConfigError, match="options.imagee"):
        create_sandbox("bwrap", limits=SandboxLimits(), imagee="x")


@pytest.mark.parametrize("zygote", [False, True], ids=["plain", "zygote"])
def test_closing_while_sessions_start_ends_and_leaves_no_process(zygote):
    """A pool closed at any moment of its warm-ups (the end of every synth run) cancels sessions halfway
    through starting, process creation included: close() must end, and no bwrap may outlive it."""

    def bwraps() -> set[int]:
        """This process's bwrap instances and orphaned ones (other jobs on the machine have their own)."""
        import os

        found = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name == "bwrap" and fields[0] != "Z" and int(fields[1]) in (1, os.getpid()):
                found.add(int(pid))
        return found

    before = bwraps()

    async def main():
        for step in range(40):
            pool = SandboxPool("bwrap", size=4, zygote=zygote)
            await pool.start()
            await asyncio.sleep(0.004 * step)  # every phase of a start, from fork to a ready worker
            await asyncio.wait_for(pool.close(), 30)

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while (left := bwraps() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"bwrap processes outlived the pool: {sorted(left)}"
