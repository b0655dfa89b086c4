"""Endpoint routing inside a Ray rollout actor: this node's replica first, least loaded otherwise,
one endpoint for every turn of an episode, a failing endpoint passed over for a while."""

from __future__ import annotations

import asyncio

import pytest

from agentkit.errors import ModelError
from agentkit.records import Task
from agentkit.synth.executors.ray import local_endpoints
from agentkit.synth.rollout import StickyRouter

A, B, C = "http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1", "http://127.0.0.1:8000/v1"
TASK = Task(id="t", env="e", prompt="p")


class Client:
    def __init__(self, name: str, fail: bool = False):
        self.name, self.fail = name, fail

    async def complete(self, messages, tools=None, sampling=None):
        if self.fail:
            raise ModelError("connection refused")
        return self.name


def router(local=(), fail_b: bool = False) -> StickyRouter:
    return StickyRouter({A: Client("client-a"), B: Client("client-b", fail=fail_b)}, local=local)


async def served_by(routes: StickyRouter) -> str:
    async with routes.episode(TASK) as client:
        return await client.complete([])


def test_endpoints_on_this_node_are_found_by_address_or_loopback():
    assert local_endpoints([A, B, C], "10.0.0.2") == [B, C]
    assert local_endpoints([A, B], "10.0.0.9") == []


def test_the_local_replica_takes_every_episode_while_it_is_up():
    routes = router(local=[B])

    async def episodes():
        async with routes.episode(TASK) as first, routes.episode(TASK) as second:
            return await first.complete([]), await second.complete([])

    assert asyncio.run(episodes()) == ("client-b", "client-b")
    assert routes.episodes == {A: 0, B: 2}


def test_without_a_local_replica_episodes_go_to_the_least_loaded_and_stay_there():
    routes = router()

    async def episodes():
        async with routes.episode(TASK) as first:
            async with routes.episode(TASK) as second:
                assert routes.in_flight == {A: 1, B: 1}
                return await first.complete([]), await second.complete([])

    first, second = asyncio.run(episodes())
    assert {first, second} == {"client-a", "client-b"}
    assert routes.in_flight == {A: 0, B: 0}


def test_an_endpoint_that_failed_a_request_is_passed_over():
    routes = router(local=[B], fail_b=True)
    with pytest.raises(ModelError):
        asyncio.run(served_by(routes))
    assert asyncio.run(served_by(routes)) == "client-a"
    assert routes.episodes == {A: 1, B: 1}
