"""The tool-use simulators' policies, state verification, and the generated tasks' self-test."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentkit.client import ScriptedClient
from agentkit.config import TaskSourceConfig
from agentkit.envs.tooluse import ToolUseEnv
from agentkit.envs.tooluse.env import mentions, state_diff
from agentkit.envs.tooluse.generator import TEMPLATES, templates_for
from agentkit.envs.tooluse.simulators import Calendar, FileSystem, Shop
from agentkit.errors import ConfigError, ToolError
from agentkit.loop import run_episode
from agentkit.records import Status
from agentkit.toolcalls import render_tool_call


def _shop() -> Shop:
    return Shop(
        {
            "customers": {"C001": {"name": "Ada Silva", "email": "ada@x.io", "credit_cents": 0}},
            "products": {"P001": {"name": "oak lamp", "price_cents": 1999, "stock": 2}},
            "orders": {
                "O1001": {
                    "customer_id": "C001",
                    "status": "delivered",
                    "items": [
                        {
                            "item_id": "O1001-1",
                            "product_id": "P001",
                            "quantity": 2,
                            "unit_price_cents": 1999,
                            "refunded": False,
                        }
                    ],
                }
            },
            "refunds": [],
            "next_order": 1002,
        }
    )


def test_shop_policies():
    shop = _shop()
    with pytest.raises(ToolError, match="only pending orders can be cancelled"):
        shop.cancel_order("O1001", "changed my mind")
    assert shop.refund_items("O1001", ["O1001-1"], "broken") == {
        "order_id": "O1001",
        "refunded": 39.98,
        "status": "refunded",
    }
    assert shop.state["customers"]["C001"]["credit_cents"] == 3998
    with pytest.raises(ToolError, match="only delivered orders"):
        shop.refund_items("O1001", ["O1001-1"], "again")
    with pytest.raises(ToolError, match="only 2 of P001 in stock"):
        shop.place_order("C001", [{"product_id": "P001", "quantity": 3}])
    order = shop.place_order("C001", [{"product_id": "P001", "quantity": 2}])
    assert order["order_id"] == "O1002" and shop.state["products"]["P001"]["stock"] == 0
    shop.cancel_order("O1002", "oops")
    assert shop.state["products"]["P001"]["stock"] == 2
    with pytest.raises(ToolError, match="no order with id"):
        shop.get_order("O9")


def test_calendar_and_file_system_rules():
    cal = Calendar()
    cal.create_event("standup", "2025-01-02", "09:00", "09:30")
    with pytest.raises(ToolError, match="conflicts with E1"):
        cal.create_event("overlap", "2025-01-02", "09:15", "10:00")
    cal.create_event("lunch", "2025-01-02", "12:00", "13:00")
    assert cal.find_free_slots("2025-01-02", 60)["slots"] == [
        {"start": "09:30", "end": "12:00"},
        {"start": "13:00", "end": "17:00"},
    ]
    with pytest.raises(ToolError, match="HH:MM"):
        cal.create_event("bad", "2025-01-02", "25:99", "26:00")
    fs = FileSystem({"dirs": ["/", "/a"], "files": {"/a/x.txt": "hi"}})
    with pytest.raises(ToolError, match="use parents=true"):
        fs.make_dir("/b/c")
    fs.make_dir("/b/c", parents=True)
    fs.move("/a/x.txt", "/b/c")
    assert fs.read_file("/b/c/x.txt")["content"] == "hi"
    with pytest.raises(ToolError, match="not empty"):
        fs.delete("/b")
    fs.move("/b", "/a/b")
    assert fs.state == {"dirs": ["/", "/a", "/a/b", "/a/b/c"], "files": {"/a/b/c/x.txt": "hi"}}
    with pytest.raises(ToolError, match="must be absolute"):
        fs.list_dir("relative")


def test_required_outputs_match_whole_tokens():
    assert mentions("The total was $1,234.50.", "1234.50")
    assert mentions("3 lines start with TODO", "3")
    assert not mentions("13 lines", "3") and not mentions("3.5 lines", "3") and not mentions("x3", "3")
    assert mentions("Order O1003 is SHIPPED.", "shipped")
    assert state_diff({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 3]}}) == [
        "a.b: expected 1, got 2",
        "a.c[1]: expected 2, got 3",
    ]


def test_every_template_is_solved_by_its_reference_and_extra_damage_fails():
    env = ToolUseEnv()
    names = list(TEMPLATES)
    tasks = [
        task
        for name in names
        for task in env.load_tasks(TaskSourceConfig(n=3, seed=11, options={"templates": [name]}))
    ]
    assert len(tasks) == 3 * len(names)

    async def run_all():
        outcomes = []
        for task in tasks:
            outcomes.append(await run_episode(env, task, env.reference_solver(task)))
        return outcomes

    trajectories = asyncio.run(run_all())
    failed = [(t.task.id, t.status, t.error, t.verdict) for t in trajectories if not t.passed]
    assert not failed

    # The reference's own calls plus one harmful extra: the state check must notice it.
    task = next(t for t in tasks if t.meta["template"] == "order_status")
    order_id = task.meta["request"]["order_id"]
    customer_id = task.meta["initial_state"]["shop"]["orders"][order_id]["customer_id"]
    harmful = render_tool_call(
        "place_order", {"customer_id": customer_id, "items": [{"product_id": "P001", "quantity": 1}]}
    )
    truthful = next(t for t in trajectories if t.task.id == task.id).messages[-1].content
    script = [render_tool_call("get_order", {"order_id": order_id}), harmful, truthful]
    trajectory = asyncio.run(run_episode(env, task, ScriptedClient(script)))
    assert trajectory.status == Status.completed and trajectory.stats.tool_errors == 0
    assert not trajectory.passed and "differs from the expected" in trajectory.verdict.reason
    assert any(
        line.startswith("shop.orders.") and "unexpected" in line
        for line in trajectory.verdict.details["state_diff"]
    )


def test_wrong_target_fails_with_a_readable_diff():
    env = ToolUseEnv()
    (task,) = env.load_tasks(TaskSourceConfig(n=1, seed=5, options={"templates": ["refund_most_expensive"]}))
    order_id = task.meta["request"]["order_id"]
    items = task.meta["initial_state"]["shop"]["orders"][order_id]["items"]
    cheapest = min(items, key=lambda it: it["unit_price_cents"])["item_id"]
    script = [
        render_tool_call("refund_items", {"order_id": order_id, "item_ids": [cheapest], "reason": "damaged"}),
        "Refunded.",
    ]
    trajectory = asyncio.run(run_episode(env, task, ScriptedClient(script)))
    diff = trajectory.verdict.details["state_diff"]
    assert not trajectory.passed and any("refunded: expected" in line for line in diff), diff
    json.dumps(trajectory.verdict.details)


def test_generator_options_are_checked():
    assert templates_for({"domains": ["calendar"]}) == ["schedule_first_free", "reschedule", "cancel_with"]
    with pytest.raises(ConfigError, match="unknown template"):
        templates_for({"templates": ["teleport"]})
    with pytest.raises(ConfigError, match="calls_scope"):
        ToolUseEnv(calls_scope="everything")
