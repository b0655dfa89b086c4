"""Generated tool-use tasks and their reference solvers.

Each template builds a world (the simulators' initial states), a user request, and the expected final
state, which it computes by applying the intended operations directly to a simulator. The reference
solver gets only what the user said and discovers the rest through the tools (it looks the order up
before refunding, asks for free slots before booking...), so a passing reference trajectory shows that
tools, state and verifier agree.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from agentkit.envs.tasks import check_task_options
from agentkit.envs.tooluse.simulators import (
    SIMULATORS,
    Calendar,
    FileSystem,
    Shop,
    _hhmm,
    _minutes,
    format_money,
)
from agentkit.errors import ConfigError
from agentkit.records import Task

FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski", "Reyes", "Brennan"]
PRODUCTS = [
    "kettle",
    "lamp",
    "backpack",
    "notebook",
    "headphones",
    "blender",
    "umbrella",
    "mug",
    "keyboard",
    "toaster",
    "scarf",
    "thermos",
    "stapler",
    "pillow",
    "candle",
    "tripod",
]
ADJECTIVES = ["steel", "oak", "compact", "classic", "travel", "deluxe", "mini", "ceramic"]
TITLES = [
    "design review",
    "1:1",
    "budget sync",
    "standup",
    "interview",
    "lunch",
    "retro",
    "planning",
    "vendor call",
    "demo",
]
WORDS = ["alpha", "bravo", "delta", "ember", "fjord", "gamma", "harbor", "indigo", "juniper", "kestrel"]


@dataclass
class Calls:
    """A solver turn: reasoning and the tool calls to make; the solver receives their results."""

    thought: str
    calls: list[tuple[str, dict[str, Any]]]


@dataclass
class Final:
    thought: str
    text: str


SolverGen = Generator[Calls | Final, list[Any], None]


@dataclass
class Built:
    prompt: str
    request: dict[str, Any]
    """What the user said, as data: all the solver may use."""
    initial: dict[str, dict[str, Any]]
    apply: Callable[[dict[str, Any]], None]
    """Applies the intended operations to the simulators (by domain), giving the expected state."""
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Template:
    name: str
    domains: tuple[str, ...]
    build: Callable[[random.Random], Built]
    solve: Callable[[dict[str, Any]], SolverGen]
    tools: tuple[str, ...] = ()
    """The tools the reference solution calls (what ``tool_subset=task`` offers); empty: every domain tool."""


# --------------------------------------------------------------------------------------------- worlds


def _people(rng: random.Random, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name not in names:
            names.append(name)
    return names


def _shop_world(rng: random.Random, n_customers: int = 4) -> dict[str, Any]:
    state = Shop.empty_state()
    for i, name in enumerate(_people(rng, n_customers), start=1):
        email = name.lower().replace(" ", ".") + "@example.com"
        state["customers"][f"C{i:03d}"] = {"name": name, "email": email, "credit_cents": 0}
    picked = rng.sample(PRODUCTS, 8)
    for i, noun in enumerate(picked, start=1):
        state["products"][f"P{i:03d}"] = {
            "name": f"{rng.choice(ADJECTIVES)} {noun}",
            "price_cents": rng.randint(5, 150) * 100 + rng.choice([0, 49, 99]),
            "stock": rng.randint(3, 40),
        }
    return state


def _add_order(
    rng: random.Random, state: dict[str, Any], customer_id: str, status: str, n_items: int | None = None
) -> str:
    order_id = f"O{state['next_order']}"
    state["next_order"] += 1
    products = rng.sample(sorted(state["products"]), n_items or rng.randint(1, 3))
    items = [
        {
            "item_id": f"{order_id}-{n}",
            "product_id": pid,
            "quantity": rng.randint(1, 3),
            "unit_price_cents": state["products"][pid]["price_cents"],
            "refunded": False,
        }
        for n, pid in enumerate(products, start=1)
    ]
    state["orders"][order_id] = {"customer_id": customer_id, "status": status, "items": items}
    return order_id


def _calendar_world(rng: random.Random, dates: list[str], people: list[str]) -> dict[str, Any]:
    state = Calendar.empty_state()
    for date in dates:
        cursor = 9 * 60 + rng.choice([0, 30])
        while True:
            start = cursor + rng.choice([0, 0, 30, 60, 90])
            length = rng.choice([30, 30, 60, 60, 90])
            if (
                start + length > 17 * 60
                or len([e for e in state["events"].values() if e["date"] == date]) >= 5
            ):
                break
            event_id = f"E{state['next_event']}"
            state["next_event"] += 1
            state["events"][event_id] = {
                "title": rng.choice(TITLES),
                "date": date,
                "start": _hhmm(start),
                "end": _hhmm(start + length),
                "attendees": sorted(rng.sample(people, rng.randint(1, 2))),
            }
            cursor = start + length
    return state


def _dates(rng: random.Random, n: int) -> list[str]:
    month = rng.randint(1, 12)
    days = sorted(rng.sample(range(1, 28), n))
    return [f"2025-{month:02d}-{d:02d}" for d in days]


def _sims(initial: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {domain: SIMULATORS[domain](state) for domain, state in initial.items()}


# ------------------------------------------------------------------------------------------- shop tasks


def build_refund_most_expensive(rng: random.Random) -> Built:
    state = _shop_world(rng)
    customer_id = rng.choice(sorted(state["customers"]))
    for other in sorted(state["customers"]):
        _add_order(rng, state, other, rng.choice(["pending", "shipped", "delivered"]))
    while True:
        order_id = _add_order(rng, state, customer_id, "delivered", n_items=rng.randint(2, 3))
        prices = [it["unit_price_cents"] for it in state["orders"][order_id]["items"]]
        if len(set(prices)) == len(prices):
            break
        del state["orders"][order_id]
    customer = state["customers"][customer_id]
    item = max(state["orders"][order_id]["items"], key=lambda it: it["unit_price_cents"])

    def apply(sims: dict[str, Any]) -> None:
        sims["shop"].refund_items(order_id, [item["item_id"]], "damaged")

    prompt = (
        f"Hi, this is {customer['name']} ({customer['email']}). The most expensive item in my order "
        f"{order_id} arrived damaged. Please refund that item (all units of it)."
    )
    return Built(prompt, {"order_id": order_id}, {"shop": state}, apply)


def solve_refund_most_expensive(request: dict[str, Any]) -> SolverGen:
    order_id = request["order_id"]
    (order,) = yield Calls(
        f"Analysis: the customer wants a refund for the most expensive item of {order_id}.\n"
        "Plan: look the order up to see its items and prices, then refund the priciest one.",
        [("get_order", {"order_id": order_id})],
    )
    item = max(order["items"], key=lambda it: it["unit_price"])
    (refund,) = yield Calls(
        f"Reflection: the order is {order['status']}; the most expensive item is {item['name']} "
        f"({item['item_id']}) at {item['unit_price']}. Refunding it now.",
        [
            (
                "refund_items",
                {"order_id": order_id, "item_ids": [item["item_id"]], "reason": "arrived damaged"},
            )
        ],
    )
    yield Final(
        "Reflection: the refund went through.",
        f"I refunded the {item['name']} from order {order_id}: {refund['refunded']:.2f} went to your store "
        "credit.",
    )


def build_cancel_pending(rng: random.Random) -> Built:
    state = _shop_world(rng)
    customer_id = rng.choice(sorted(state["customers"]))
    statuses = ["pending"] * rng.randint(1, 3) + rng.sample(["shipped", "delivered", "cancelled"], 2)
    rng.shuffle(statuses)
    for status in statuses:
        _add_order(rng, state, customer_id, status)
    for other in sorted(state["customers"]):
        if other != customer_id:
            _add_order(rng, state, other, "pending")
    pending = [
        oid
        for oid, o in sorted(state["orders"].items())
        if o["customer_id"] == customer_id and o["status"] == "pending"
    ]
    customer = state["customers"][customer_id]

    def apply(sims: dict[str, Any]) -> None:
        for oid in pending:
            sims["shop"].cancel_order(oid, "customer request")

    prompt = f"Please cancel every order of mine that has not shipped yet. My email is {customer['email']}."
    return Built(prompt, {"email": customer["email"]}, {"shop": state}, apply)


def solve_cancel_pending(request: dict[str, Any]) -> SolverGen:
    (customer,) = yield Calls(
        "Analysis: orders that have not shipped are the pending ones.\n"
        "Plan: find the customer by email, list their pending orders, cancel each.",
        [("find_customer", {"query": request["email"]})],
    )
    (listing,) = yield Calls(
        f"Reflection: the email belongs to {customer['customer_id']}. Listing their pending orders.",
        [("list_orders", {"customer_id": customer["customer_id"], "status": "pending"})],
    )
    ids = [o["order_id"] for o in listing["orders"]]
    if ids:
        yield Calls(
            f"Reflection: {len(ids)} pending order(s): {', '.join(ids)}. Cancelling them.",
            [("cancel_order", {"order_id": oid, "reason": "customer request"}) for oid in ids],
        )
    yield Final(
        "Reflection: every pending order is cancelled; shipped ones cannot be.",
        f"Done: I cancelled {', '.join(ids) or 'nothing (no pending orders)'}.",
    )


def build_place_order(rng: random.Random) -> Built:
    state = _shop_world(rng)
    customer_id = rng.choice(sorted(state["customers"]))
    _add_order(rng, state, customer_id, "delivered")
    product_id = rng.choice(sorted(state["products"]))
    product = state["products"][product_id]
    quantity = rng.randint(1, min(3, product["stock"]))
    customer = state["customers"][customer_id]
    noun = product["name"].split()[-1]
    total = product["price_cents"] * quantity

    def apply(sims: dict[str, Any]) -> None:
        sims["shop"].place_order(customer_id, [{"product_id": product_id, "quantity": quantity}])

    prompt = (
        f"I'm {customer['name']}. Please order {quantity} {noun}{'s' if quantity > 1 else ''} for me and "
        "tell me the order total."
    )
    return Built(
        prompt,
        {"name": customer["name"], "noun": noun, "quantity": quantity},
        {"shop": state},
        apply,
        outputs=[format_money(total)],
    )


def solve_place_order(request: dict[str, Any]) -> SolverGen:
    customer, found = yield Calls(
        "Analysis: a new order for a named customer.\n"
        "Plan: find the customer and the product, then place the order.",
        [("find_customer", {"query": request["name"]}), ("search_products", {"query": request["noun"]})],
    )
    product = found["products"][0]
    (order,) = yield Calls(
        f"Reflection: the product is {product['name']} ({product['product_id']}), "
        f"{product['stock']} in stock. Placing the order.",
        [
            (
                "place_order",
                {
                    "customer_id": customer["customer_id"],
                    "items": [{"product_id": product["product_id"], "quantity": request["quantity"]}],
                },
            )
        ],
    )
    yield Final(
        "Reflection: the order is placed and pending.",
        f"Your order {order['order_id']} is placed. The order total is {order['total']:.2f}.",
    )


def build_order_status(rng: random.Random) -> Built:
    state = _shop_world(rng)
    for cid in sorted(state["customers"]):
        _add_order(rng, state, cid, rng.choice(["pending", "shipped", "delivered"]))
    order_id = rng.choice(sorted(state["orders"]))
    order = state["orders"][order_id]
    total = sum(it["unit_price_cents"] * it["quantity"] for it in order["items"])
    prompt = f"What is the status of order {order_id}, and what was its total?"
    return Built(
        prompt,
        {"order_id": order_id},
        {"shop": state},
        lambda sims: None,
        outputs=[order["status"], format_money(total)],
    )


def solve_order_status(request: dict[str, Any]) -> SolverGen:
    (order,) = yield Calls(
        f"Analysis: the status and the total of {request['order_id']} are both fields of the order record.\n"
        "Plan: look the order up; the answer is in its record.",
        [("get_order", {"order_id": request["order_id"]})],
    )
    yield Final(
        "Reflection: the record has both the status and the total.",
        f"Order {order['order_id']} is {order['status']}; its total was {order['total']:.2f}.",
    )


# --------------------------------------------------------------------------------------- calendar tasks


def build_schedule_first_free(rng: random.Random) -> Built:
    people = _people(rng, 4)
    (date,) = _dates(rng, 1)
    state = _calendar_world(rng, [date], people)
    duration = rng.choice([30, 45, 60])
    title = f"{rng.choice(WORDS)} kickoff"
    guest = rng.choice(people)
    busy = [(_minutes(e["start"]), _minutes(e["end"])) for e in state["events"].values()]
    start = next(
        (
            m
            for m in range(9 * 60, 17 * 60 - duration + 1)
            if all(m + duration <= s or e <= m for s, e in busy)
        ),
        None,
    )
    if start is None:
        raise _Retry
    end = start + duration

    def apply(sims: dict[str, Any]) -> None:
        sims["calendar"].create_event(title, date, _hhmm(start), _hhmm(end), [guest])

    prompt = (
        f"Book a {duration}-minute meeting called '{title}' with {guest} on {date}, at the earliest "
        "time I am free between 09:00 and 17:00."
    )
    return Built(
        prompt,
        {"title": title, "guest": guest, "date": date, "duration": duration},
        {"calendar": state},
        apply,
    )


def solve_schedule_first_free(request: dict[str, Any]) -> SolverGen:
    (free,) = yield Calls(
        f"Analysis: a {request['duration']}-minute slot on {request['date']} that is free, the earliest one.\n"
        "Plan: ask for the free slots that fit the meeting, then book the earliest.",
        [("find_free_slots", {"date": request["date"], "duration_minutes": request["duration"]})],
    )
    start = free["slots"][0]["start"]
    end = _hhmm(_minutes(start) + request["duration"])
    (event,) = yield Calls(
        f"Reflection: the earliest slot starts at {start}; the meeting ends at {end}.",
        [
            (
                "create_event",
                {
                    "title": request["title"],
                    "date": request["date"],
                    "start": start,
                    "end": end,
                    "attendees": [request["guest"]],
                },
            )
        ],
    )
    yield Final(
        "Reflection: booked without conflicts.",
        f"Booked '{event['title']}' on {event['date']} from {event['start']} to {event['end']}.",
    )


def build_reschedule(rng: random.Random) -> Built:
    people = _people(rng, 4)
    day1, day2 = _dates(rng, 2)
    state = _calendar_world(rng, [day1], people)
    counts: dict[str, int] = {}
    for e in state["events"].values():
        counts[e["title"]] = counts.get(e["title"], 0) + 1
    unique = [eid for eid, e in sorted(state["events"].items()) if counts[e["title"]] == 1]
    if not unique:
        raise _Retry
    event_id = rng.choice(unique)
    event = state["events"][event_id]

    def apply(sims: dict[str, Any]) -> None:
        sims["calendar"].update_event(event_id, date=day2)

    prompt = f"Move my '{event['title']}' on {day1} to {day2}, keeping the same time."
    return Built(prompt, {"title": event["title"], "from": day1, "to": day2}, {"calendar": state}, apply)


def solve_reschedule(request: dict[str, Any]) -> SolverGen:
    (listing,) = yield Calls(
        f"Analysis: '{request['title']}' moves from {request['from']} to {request['to']}; only the date changes.\n"
        "Plan: find the event's id on the original date, then change its date.",
        [("list_events", {"date": request["from"]})],
    )
    event = next(e for e in listing["events"] if e["title"] == request["title"])
    (moved,) = yield Calls(
        f"Reflection: it is {event['event_id']} at {event['start']}-{event['end']}.",
        [("update_event", {"event_id": event["event_id"], "date": request["to"]})],
    )
    yield Final(
        "Reflection: moved; the times are unchanged.",
        f"Moved '{moved['title']}' to {moved['date']}, {moved['start']}-{moved['end']}.",
    )


def build_cancel_with(rng: random.Random) -> Built:
    people = _people(rng, 4)
    day1, day2 = _dates(rng, 2)
    state = _calendar_world(rng, [day1, day2], people)
    guests = sorted({p for e in state["events"].values() if e["date"] == day1 for p in e["attendees"]})
    if not guests:
        raise _Retry
    guest = rng.choice(guests)
    doomed = [
        eid for eid, e in sorted(state["events"].items()) if e["date"] == day1 and guest in e["attendees"]
    ]

    def apply(sims: dict[str, Any]) -> None:
        for eid in doomed:
            sims["calendar"].delete_event(eid)

    prompt = f"Cancel all of my meetings with {guest} on {day1}. Leave other days alone."
    return Built(prompt, {"guest": guest, "date": day1}, {"calendar": state}, apply)


def solve_cancel_with(request: dict[str, Any]) -> SolverGen:
    (listing,) = yield Calls(
        f"Analysis: only meetings with {request['guest']} on {request['date']} go; other days stay.\n"
        "Plan: list that day's events with this attendee, then delete each.",
        [("list_events", {"date": request["date"], "attendee": request["guest"]})],
    )
    ids = [e["event_id"] for e in listing["events"]]
    yield Calls(
        f"Reflection: {len(ids)} meeting(s) to cancel: {', '.join(ids)}.",
        [("delete_event", {"event_id": eid}) for eid in ids],
    )
    yield Final("Reflection: deleted; other days untouched.", f"Cancelled {', '.join(ids)}.")


# ------------------------------------------------------------------------------------------ file tasks


def _fs_world(rng: random.Random) -> dict[str, Any]:
    user = rng.choice(FIRST).lower()
    state = FileSystem.empty_state()
    for d in ["/home", f"/home/{user}", f"/home/{user}/notes", "/var", "/var/app", "/reports"]:
        state["dirs"].append(d)
    state["files"][f"/home/{user}/notes/readme.md"] = "# notes\n"
    state["user"] = user
    return state


def build_archive_logs(rng: random.Random) -> Built:
    state = _fs_world(rng)
    user = state.pop("user")
    names = rng.sample(WORDS, 5)
    logs = names[: rng.randint(2, 4)]
    for name in names:
        ext = ".log" if name in logs else rng.choice([".txt", ".cfg"])
        state["files"][f"/var/app/{name}{ext}"] = f"{name} {rng.randint(1, 999)}\n"
    state["dirs"] = sorted(state["dirs"])
    del user

    def apply(sims: dict[str, Any]) -> None:
        fs = sims["fs"]
        fs.make_dir("/var/app/archive")
        for name in logs:
            fs.move(f"/var/app/{name}.log", "/var/app/archive")

    prompt = "Create the folder /var/app/archive and move every .log file in /var/app into it."
    return Built(
        prompt, {"dir": "/var/app", "archive": "/var/app/archive", "ext": ".log"}, {"fs": state}, apply
    )


def solve_archive_logs(request: dict[str, Any]) -> SolverGen:
    (listing,) = yield Calls(
        f"Analysis: every {request['ext']} file directly in {request['dir']} must end up in {request['archive']}, "
        "which does not exist yet.\n"
        "Plan: list the folder, create the archive, move the .log files into it.",
        [("list_dir", {"path": request["dir"]})],
    )
    logs = [
        e["name"] for e in listing["entries"] if e["type"] == "file" and e["name"].endswith(request["ext"])
    ]
    yield Calls(
        f"Reflection: {len(logs)} log file(s): {', '.join(logs)}.",
        [("make_dir", {"path": request["archive"]})]
        + [
            ("move", {"source": f"{request['dir']}/{name}", "destination": request["archive"]})
            for name in logs
        ],
    )
    yield Final(
        "Reflection: the archive holds every log file.", f"Moved {len(logs)} files into {request['archive']}."
    )


def build_count_todos(rng: random.Random) -> Built:
    state = _fs_world(rng)
    user = state.pop("user")
    state["dirs"] = sorted(state["dirs"])
    lines = []
    todos = 0
    for _ in range(rng.randint(4, 9)):
        word = rng.choice(WORDS)
        if rng.random() < 0.5:
            lines.append(f"TODO: {word}")
            todos += 1
        else:
            lines.append(f"done: {word}")
    if todos == 0:
        lines.append("TODO: review")
        todos = 1
    path = f"/home/{user}/notes/tasks.txt"
    state["files"][path] = "\n".join(lines) + "\n"
    prompt = f"How many lines of {path} start with 'TODO'?"
    return Built(prompt, {"path": path}, {"fs": state}, lambda sims: None, outputs=[str(todos)])


def solve_count_todos(request: dict[str, Any]) -> SolverGen:
    (file,) = yield Calls(
        f"Analysis: a count of the lines of {request['path']} that begin with 'TODO', nothing else.\n"
        "Plan: read the file and count the lines that start with TODO.",
        [("read_file", {"path": request["path"]})],
    )
    count = sum(1 for line in file["content"].splitlines() if line.startswith("TODO"))
    yield Final(f"Reflection: counted {count} matching lines.", f"{count} lines start with 'TODO'.")


def build_append_line(rng: random.Random) -> Built:
    state = _fs_world(rng)
    user = state.pop("user")
    state["dirs"] = sorted(state["dirs"])
    path = f"/home/{user}/todo.md"
    body = "\n".join(f"- {w}" for w in rng.sample(WORDS, 3))
    state["files"][path] = body + ("\n" if rng.random() < 0.5 else "")
    item = f"call {rng.choice(FIRST)}"

    def apply(sims: dict[str, Any]) -> None:
        old = sims["fs"].read_file(path)["content"]
        sims["fs"].write_file(path, old + ("" if old.endswith("\n") else "\n") + f"- {item}\n")

    prompt = f"Add the item '{item}' as a new '- ' line at the end of {path}."
    return Built(prompt, {"path": path, "item": item}, {"fs": state}, apply)


def solve_append_line(request: dict[str, Any]) -> SolverGen:
    (file,) = yield Calls(
        f"Analysis: '- {request['item']}' goes on a line of its own at the end of {request['path']}.\n"
        "Plan: read the file first, so the new line does not glue onto the last one.",
        [("read_file", {"path": request["path"]})],
    )
    content = file["content"]
    prefix = "" if content.endswith("\n") else "\n"
    yield Calls(
        "Reflection: the file " + ("ends" if not prefix else "does not end") + " with a newline.",
        [
            (
                "write_file",
                {"path": request["path"], "content": f"{prefix}- {request['item']}\n", "append": True},
            )
        ],
    )
    yield Final("Reflection: appended.", f"Added '- {request['item']}' to {request['path']}.")


def build_order_report(rng: random.Random) -> Built:
    shop = _shop_world(rng)
    fs = _fs_world(rng)
    fs.pop("user")
    fs["dirs"] = sorted(fs["dirs"])
    customer_id = rng.choice(sorted(shop["customers"]))
    order_id = _add_order(
        rng, shop, customer_id, rng.choice(["shipped", "delivered"]), n_items=rng.randint(2, 3)
    )
    path = f"/reports/{order_id}.txt"
    names = [shop["products"][it["product_id"]]["name"] for it in shop["orders"][order_id]["items"]]

    def apply(sims: dict[str, Any]) -> None:
        sims["fs"].write_file(path, "\n".join(names) + "\n")

    prompt = f"Write the product names of order {order_id}, one per line in order, to the file {path}."
    return Built(prompt, {"order_id": order_id, "path": path}, {"shop": shop, "fs": fs}, apply)


def solve_order_report(request: dict[str, Any]) -> SolverGen:
    (order,) = yield Calls(
        f"Analysis: the item names of {request['order_id']}, in order, one per line, go to {request['path']}.\n"
        "Plan: read the order's items from the shop, then write them to the report file.",
        [("get_order", {"order_id": request["order_id"]})],
    )
    names = [it["name"] for it in order["items"]]
    yield Calls(
        f"Reflection: {len(names)} items.",
        [("write_file", {"path": request["path"], "content": "\n".join(names) + "\n"})],
    )
    yield Final(
        "Reflection: the report is written.", f"Wrote {len(names)} product names to {request['path']}."
    )


class _Retry(Exception):
    """A random world that does not fit the template; the builder draws again."""


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            "refund_most_expensive",
            ("shop",),
            build_refund_most_expensive,
            solve_refund_most_expensive,
            ("get_order", "refund_items"),
        ),
        Template(
            "cancel_pending",
            ("shop",),
            build_cancel_pending,
            solve_cancel_pending,
            ("find_customer", "list_orders", "cancel_order"),
        ),
        Template(
            "place_order",
            ("shop",),
            build_place_order,
            solve_place_order,
            ("find_customer", "search_products", "place_order"),
        ),
        Template("order_status", ("shop",), build_order_status, solve_order_status, ("get_order",)),
        Template(
            "schedule_first_free",
            ("calendar",),
            build_schedule_first_free,
            solve_schedule_first_free,
            ("find_free_slots", "create_event"),
        ),
        Template(
            "reschedule", ("calendar",), build_reschedule, solve_reschedule, ("list_events", "update_event")
        ),
        Template(
            "cancel_with",
            ("calendar",),
            build_cancel_with,
            solve_cancel_with,
            ("list_events", "delete_event"),
        ),
        Template(
            "archive_logs", ("fs",), build_archive_logs, solve_archive_logs, ("list_dir", "make_dir", "move")
        ),
        Template("count_todos", ("fs",), build_count_todos, solve_count_todos, ("read_file",)),
        Template("append_line", ("fs",), build_append_line, solve_append_line, ("read_file", "write_file")),
        Template(
            "order_report",
            ("shop", "fs"),
            build_order_report,
            solve_order_report,
            ("get_order", "write_file"),
        ),
    ]
}


def templates_for(options: dict[str, Any]) -> list[str]:
    check_task_options(options, ("templates", "domains"), "tooluse generator")
    names = list(options.get("templates") or TEMPLATES)
    for name in names:
        if name not in TEMPLATES:
            raise ConfigError(
                f"tasks.options.templates: unknown template '{name}'; known: {', '.join(TEMPLATES)}"
            )
    domains = options.get("domains")
    if domains:
        bad = set(domains) - set(SIMULATORS)
        if bad:
            raise ConfigError(
                f"tasks.options.domains: unknown domain(s) {sorted(bad)}; known: {sorted(SIMULATORS)}"
            )
        names = [n for n in names if set(TEMPLATES[n].domains) <= set(domains)]
    if not names:
        raise ConfigError("tasks.options: the chosen templates and domains select nothing")
    return names


def expected_state(
    initial: dict[str, dict[str, Any]], apply: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    sims = _sims(initial)
    apply(sims)
    return {domain: sim.snapshot() for domain, sim in sims.items()}


def make_task(index: int, seed: int, names: list[str], env_name: str = "tooluse") -> Task:
    """Task number ``index`` of the stream for ``seed`` (independent of how many are drawn)."""
    rng = random.Random(f"tooluse/{seed}/{index}")
    template = TEMPLATES[names[rng.randrange(len(names))]]
    for _ in range(100):
        try:
            built = template.build(rng)
            break
        except _Retry:
            continue
    else:  # pragma: no cover - every template fits far more often than that
        raise RuntimeError(f"template {template.name} found no fitting world")
    initial = copy.deepcopy(built.initial)
    expected = expected_state(built.initial, built.apply)
    if expected == initial and not built.outputs:
        raise RuntimeError(f"template {template.name} built a task that nothing can fail")
    meta = {
        "check": "state",
        "template": template.name,
        "domains": sorted(built.initial),
        "initial_state": initial,
        "expected_state": expected,
        "required_outputs": built.outputs,
        "request": built.request,
        "source": "generated",
    }
    abilities = ["function_calling"]  # a task that changes the world also needs a plan and its state tracked
    if expected != initial:
        abilities += ["planning", "state_tracking"]
    elif len(template.tools) > 1:
        abilities.append("planning")
    return Task(
        id=f"gen-{template.name}-s{seed}-{index:05d}",
        env=env_name,
        prompt=built.prompt,
        meta=meta,
        abilities=abilities,
    )
