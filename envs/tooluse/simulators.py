"""Deterministic, stateful simulators behind the tool-use env's tools: a file system, a shop, a calendar.

A simulator's whole state is one JSON-serializable dict, so a task can give the initial state, the
verifier can compare the final state with the expected one (tau-bench style), and nothing depends on
the clock, randomness or the host. Each public tool is a method declared with ``@tool`` and a JSON
schema; a call the model gets wrong raises ``ToolError``, which the model sees as an observation.
Money is kept in integer cents so states compare exactly.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import posixpath
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from agentkit import tools
from agentkit.env import Tool
from agentkit.errors import ToolError
from agentkit.records import ToolSpec
from agentkit.tools import tool


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def format_money(cents: int) -> str:
    return f"{cents / 100:.2f}"


class Simulator:
    """Base: ``state`` is the whole world of one domain; tools are the ``@tool`` methods."""

    domain: ClassVar[str] = ""

    def __init__(self, state: dict[str, Any] | None = None):
        self.state = copy.deepcopy(state) if state is not None else self.empty_state()
        self.check_state()

    @classmethod
    def empty_state(cls) -> dict[str, Any]:
        raise NotImplementedError

    def check_state(self) -> None:
        """Raise ``ValueError`` when the state is malformed (used when tasks are loaded)."""

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    @classmethod
    def specs(cls) -> list[ToolSpec]:
        return tools.specs(cls)

    def tools(self) -> list[Tool]:
        def bind(method: Callable[..., Any]) -> Callable[..., str]:
            return lambda **arguments: json.dumps(method(**arguments), ensure_ascii=False)

        return tools.tools(self, wrap=bind)


# --------------------------------------------------------------------------------------------- files


class FileSystem(Simulator):
    """An in-memory POSIX-like file system: ``{"dirs": [...], "files": {path: content}}``, absolute paths."""

    domain = "fs"

    @classmethod
    def empty_state(cls) -> dict[str, Any]:
        return {"dirs": ["/"], "files": {}}

    def check_state(self) -> None:
        dirs, files = self.state.get("dirs"), self.state.get("files")
        if not isinstance(dirs, list) or not isinstance(files, dict):
            raise ValueError("fs state needs 'dirs' (a list) and 'files' (an object)")
        for path in [*dirs, *files]:
            if not isinstance(path, str) or self._norm(path) != path:
                raise ValueError(f"fs path {path!r} is not a normalized absolute path")
            if path != "/" and posixpath.dirname(path) not in dirs:
                raise ValueError(f"fs path {path!r} has no parent directory in 'dirs'")
        if "/" not in dirs:
            raise ValueError("fs state must contain the root directory '/'")
        self.state["dirs"] = sorted(set(dirs))

    @staticmethod
    def _norm(path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ToolError(f"path {path!r} must be absolute (start with '/')")
        return posixpath.normpath(path).replace("//", "/")

    def _is_dir(self, path: str) -> bool:
        return path in self.state["dirs"]

    def _parent_must_exist(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if not self._is_dir(parent):
            raise ToolError(f"directory {parent} does not exist")

    def _add_dir(self, path: str) -> None:
        self.state["dirs"] = sorted({*self.state["dirs"], path})

    @tool
    def list_dir(self, path: str) -> dict[str, Any]:
        """List the entries of a directory.

        Args:
            path: Absolute directory path, e.g. /home
        """
        path = self._norm(path)
        if not self._is_dir(path):
            raise ToolError(f"{path} is not a directory")
        entries = []
        for d in self.state["dirs"]:
            if d != path and posixpath.dirname(d) == path:
                entries.append({"name": posixpath.basename(d), "type": "dir"})
        for f, content in self.state["files"].items():
            if posixpath.dirname(f) == path:
                entries.append({"name": posixpath.basename(f), "type": "file", "size": len(content)})
        return {"path": path, "entries": sorted(entries, key=lambda e: e["name"])}

    @tool
    def read_file(self, path: str) -> dict[str, Any]:
        """Read a text file.

        Args:
            path: Absolute file path
        """
        path = self._norm(path)
        if path not in self.state["files"]:
            raise ToolError(f"no such file: {path}")
        return {"path": path, "content": self.state["files"][path]}

    @tool
    def write_file(self, path: str, content: str, append: bool = False) -> dict[str, Any]:
        """Write a text file, replacing it, or appending when append is true. The directory must exist.

        Args:
            path: Absolute file path
            content: Text to write
            append: Append instead of replacing
        """
        path = self._norm(path)
        if self._is_dir(path):
            raise ToolError(f"{path} is a directory")
        self._parent_must_exist(path)
        old = self.state["files"].get(path, "")
        self.state["files"][path] = old + content if append else content
        return {"path": path, "size": len(self.state["files"][path])}

    @tool
    def make_dir(self, path: str, parents: bool = False) -> dict[str, Any]:
        """Create a directory (and missing parents when parents is true).

        Args:
            path: Absolute directory path
            parents: Create missing parent directories
        """
        path = self._norm(path)
        if path in self.state["files"]:
            raise ToolError(f"{path} exists and is a file")
        if self._is_dir(path):
            return {"path": path, "created": False}
        missing = []
        current = path
        while not self._is_dir(current):
            if current in self.state["files"]:
                raise ToolError(f"{current} is a file")
            missing.append(current)
            current = posixpath.dirname(current)
        if len(missing) > 1 and not parents:
            raise ToolError(f"directory {posixpath.dirname(path)} does not exist (use parents=true)")
        for d in missing:
            self._add_dir(d)
        return {"path": path, "created": True}

    @tool
    def move(self, source: str, destination: str) -> dict[str, Any]:
        """Move or rename a file or directory. If the destination is an existing directory, the source moves
        into it.

        Args:
            source: Absolute path to move
            destination: Absolute target path
        """
        source, destination = self._norm(source), self._norm(destination)
        if self._is_dir(destination):
            destination = posixpath.join(destination, posixpath.basename(source))
        if source == "/":
            raise ToolError("cannot move the root directory")
        if destination in self.state["files"] or self._is_dir(destination):
            raise ToolError(f"{destination} already exists")
        self._parent_must_exist(destination)
        if source in self.state["files"]:
            self.state["files"][destination] = self.state["files"].pop(source)
        elif self._is_dir(source):
            if destination.startswith(source + "/"):
                raise ToolError("cannot move a directory into itself")
            prefix = source + "/"
            self.state["dirs"] = sorted(
                destination + d[len(source) :] if d == source or d.startswith(prefix) else d
                for d in self.state["dirs"]
            )
            self.state["files"] = {
                (destination + f[len(source) :] if f.startswith(prefix) else f): c
                for f, c in self.state["files"].items()
            }
        else:
            raise ToolError(f"no such file or directory: {source}")
        return {"source": source, "destination": destination}

    @tool
    def delete(self, path: str, recursive: bool = False) -> dict[str, Any]:
        """Delete a file, or a directory (recursive must be true for a non-empty one).

        Args:
            path: Absolute path
            recursive: Delete a directory with its contents
        """
        path = self._norm(path)
        if path in self.state["files"]:
            del self.state["files"][path]
            return {"deleted": path}
        if not self._is_dir(path) or path == "/":
            raise ToolError(f"no such file or directory: {path}" if path != "/" else "cannot delete the root")
        prefix = path + "/"
        inside = [p for p in [*self.state["dirs"], *self.state["files"]] if p.startswith(prefix)]
        if inside and not recursive:
            raise ToolError(f"directory {path} is not empty (use recursive=true)")
        self.state["dirs"] = [d for d in self.state["dirs"] if d != path and not d.startswith(prefix)]
        self.state["files"] = {f: c for f, c in self.state["files"].items() if not f.startswith(prefix)}
        return {"deleted": path}

    @tool
    def find_files(self, directory: str, pattern: str) -> dict[str, Any]:
        """Find files whose name matches a glob pattern (e.g. *.txt) under a directory, recursively.

        Args:
            directory: Absolute directory path
            pattern: Glob pattern for file names
        """
        directory = self._norm(directory)
        if not self._is_dir(directory):
            raise ToolError(f"{directory} is not a directory")
        prefix = directory.rstrip("/") + "/"
        matches = sorted(
            f
            for f in self.state["files"]
            if f.startswith(prefix) and fnmatch.fnmatchcase(posixpath.basename(f), pattern)
        )
        return {"matches": matches}


# ---------------------------------------------------------------------------------------------- shop

OrderStatus = Literal["pending", "shipped", "delivered", "cancelled", "refunded"]
_ORDER_ITEMS = {
    "type": "array",
    "minItems": 1,
    "description": "Products and quantities",
    "items": {
        "type": "object",
        "properties": {"product_id": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
        "required": ["product_id", "quantity"],
        "additionalProperties": False,
    },
}


class Shop(Simulator):
    """Customers, products with stock, orders with items; cancellations and refunds follow store policy:
    only pending orders can be cancelled, only delivered items can be refunded (to store credit)."""

    domain = "shop"

    @classmethod
    def empty_state(cls) -> dict[str, Any]:
        return {"customers": {}, "products": {}, "orders": {}, "refunds": [], "next_order": 1001}

    def check_state(self) -> None:
        for key in ("customers", "products", "orders", "refunds", "next_order"):
            if key not in self.state:
                raise ValueError(f"shop state needs '{key}'")
        for oid, order in self.state["orders"].items():
            if order.get("customer_id") not in self.state["customers"]:
                raise ValueError(f"order {oid} names unknown customer {order.get('customer_id')!r}")
            for item in order.get("items", []):
                if item.get("product_id") not in self.state["products"]:
                    raise ValueError(f"order {oid} names unknown product {item.get('product_id')!r}")

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.state["orders"].get(order_id)
        if order is None:
            raise ToolError(f"no order with id {order_id!r}")
        return order

    def _order_view(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id)
        items = [
            {
                "item_id": it["item_id"],
                "product_id": it["product_id"],
                "name": self.state["products"][it["product_id"]]["name"],
                "quantity": it["quantity"],
                "unit_price": _money(it["unit_price_cents"]),
                "refunded": it["refunded"],
            }
            for it in order["items"]
        ]
        total = sum(it["unit_price_cents"] * it["quantity"] for it in order["items"])
        return {
            "order_id": order_id,
            "customer_id": order["customer_id"],
            "status": order["status"],
            "items": items,
            "total": _money(total),
        }

    @tool
    def find_customer(self, query: str) -> dict[str, Any]:
        """Find a customer by exact name or email.

        Args:
            query: Full name or email address
        """
        q = query.strip().lower()
        for cid, customer in sorted(self.state["customers"].items()):
            if q in (customer["name"].lower(), customer["email"].lower()):
                return {
                    "customer_id": cid,
                    "name": customer["name"],
                    "email": customer["email"],
                    "store_credit": _money(customer["credit_cents"]),
                }
        raise ToolError(f"no customer named {query!r}")

    @tool
    def list_orders(self, customer_id: str, status: OrderStatus | None = None) -> dict[str, Any]:
        """List a customer's orders, optionally only those with a given status.

        Args:
            customer_id: Customer id, e.g. C001
            status: Filter by status
        """
        if customer_id not in self.state["customers"]:
            raise ToolError(f"no customer with id {customer_id!r}")
        orders = [
            {"order_id": oid, "status": o["status"], "items": len(o["items"])}
            for oid, o in sorted(self.state["orders"].items())
            if o["customer_id"] == customer_id and (status is None or o["status"] == status)
        ]
        return {"customer_id": customer_id, "orders": orders}

    @tool
    def get_order(self, order_id: str) -> dict[str, Any]:
        """Get an order with its items, prices and status.

        Args:
            order_id: Order id, e.g. O1001
        """
        return self._order_view(order_id)

    @tool
    def search_products(self, query: str) -> dict[str, Any]:
        """Search products by a word in their name.

        Args:
            query: Word to look for, case-insensitive
        """
        q = query.strip().lower()
        found = [
            {"product_id": pid, "name": p["name"], "price": _money(p["price_cents"]), "stock": p["stock"]}
            for pid, p in sorted(self.state["products"].items())
            if q and q in p["name"].lower()
        ]
        return {"products": found}

    @tool(params={"items": _ORDER_ITEMS})
    def place_order(self, customer_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Place a new order for a customer; stock is reserved at once.

        Args:
            customer_id: Customer id
            items: Products and quantities
        """
        if customer_id not in self.state["customers"]:
            raise ToolError(f"no customer with id {customer_id!r}")
        for it in items:
            product = self.state["products"].get(it["product_id"])
            if product is None:
                raise ToolError(f"no product with id {it['product_id']!r}")
            if product["stock"] < it["quantity"]:
                raise ToolError(f"only {product['stock']} of {it['product_id']} in stock")
        order_id = f"O{self.state['next_order']}"
        self.state["next_order"] += 1
        lines = []
        for n, it in enumerate(items, start=1):
            product = self.state["products"][it["product_id"]]
            product["stock"] -= it["quantity"]
            lines.append(
                {
                    "item_id": f"{order_id}-{n}",
                    "product_id": it["product_id"],
                    "quantity": it["quantity"],
                    "unit_price_cents": product["price_cents"],
                    "refunded": False,
                }
            )
        self.state["orders"][order_id] = {"customer_id": customer_id, "status": "pending", "items": lines}
        return self._order_view(order_id)

    @tool
    def cancel_order(self, order_id: str, reason: str) -> dict[str, Any]:
        """Cancel a pending order (shipped or delivered orders cannot be cancelled); its stock is restored.

        Args:
            order_id: Order id
            reason: Why the order is cancelled
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"order {order_id} is {order['status']}; only pending orders can be cancelled")
        for it in order["items"]:
            self.state["products"][it["product_id"]]["stock"] += it["quantity"]
        order["status"] = "cancelled"
        return {"order_id": order_id, "status": "cancelled"}

    @tool(
        params={
            "item_ids": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Item ids to refund",
            }
        }
    )
    def refund_items(self, order_id: str, item_ids: list[str], reason: str) -> dict[str, Any]:
        """Refund items of a delivered order to the customer's store credit.

        Args:
            order_id: Order id
            item_ids: Item ids to refund
            reason: Why the items are refunded
        """
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ToolError(f"order {order_id} is {order['status']}; only delivered orders can be refunded")
        by_id = {it["item_id"]: it for it in order["items"]}
        if len(set(item_ids)) != len(item_ids):
            raise ToolError("an item id is repeated")
        for item_id in item_ids:
            if item_id not in by_id:
                raise ToolError(f"order {order_id} has no item {item_id!r}")
            if by_id[item_id]["refunded"]:
                raise ToolError(f"item {item_id} was already refunded")
        amount = 0
        for item_id in item_ids:
            by_id[item_id]["refunded"] = True
            amount += by_id[item_id]["unit_price_cents"] * by_id[item_id]["quantity"]
        self.state["customers"][order["customer_id"]]["credit_cents"] += amount
        self.state["refunds"].append(
            {"order_id": order_id, "item_ids": sorted(item_ids), "amount_cents": amount}
        )
        if all(it["refunded"] for it in order["items"]):
            order["status"] = "refunded"
        return {"order_id": order_id, "refunded": _money(amount), "status": order["status"]}


# ------------------------------------------------------------------------------------------ calendar


def _minutes(hhmm: str) -> int:
    try:
        hours, minutes = hhmm.split(":")
        value = int(hours) * 60 + int(minutes)
    except (ValueError, AttributeError):
        raise ToolError(f"time {hhmm!r} must be HH:MM") from None
    if not 0 <= value <= 24 * 60 or len(hhmm) != 5:
        raise ToolError(f"time {hhmm!r} must be HH:MM between 00:00 and 24:00")
    return value


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "Date as YYYY-MM-DD"}
_TIME = {"type": "string", "pattern": r"^\d{2}:\d{2}$", "description": "Time as HH:MM (24-hour)"}


class Calendar(Simulator):
    """One person's calendar; events on the same date may not overlap."""

    domain = "calendar"

    @classmethod
    def empty_state(cls) -> dict[str, Any]:
        return {"events": {}, "next_event": 1}

    def check_state(self) -> None:
        if not isinstance(self.state.get("events"), dict) or not isinstance(
            self.state.get("next_event"), int
        ):
            raise ValueError("calendar state needs 'events' (an object) and 'next_event' (an integer)")

    def _event(self, event_id: str) -> dict[str, Any]:
        event = self.state["events"].get(event_id)
        if event is None:
            raise ToolError(f"no event with id {event_id!r}")
        return event

    def _conflict(self, date: str, start: int, end: int, ignore: str | None = None) -> str | None:
        for eid, e in sorted(self.state["events"].items()):
            if (
                eid != ignore
                and e["date"] == date
                and start < _minutes(e["end"])
                and _minutes(e["start"]) < end
            ):
                return eid
        return None

    def _checked_span(self, date: str, start: str, end: str, ignore: str | None = None) -> None:
        s, e = _minutes(start), _minutes(end)
        if e <= s:
            raise ToolError(f"the event must end after it starts ({start}-{end})")
        clash = self._conflict(date, s, e, ignore)
        if clash:
            other = self.state["events"][clash]
            raise ToolError(f"conflicts with {clash} '{other['title']}' ({other['start']}-{other['end']})")

    @tool(params={"date": _DATE})
    def list_events(self, date: str, attendee: str | None = None) -> dict[str, Any]:
        """List the events on a date, optionally only those with a given attendee.

        Args:
            date: Date as YYYY-MM-DD
            attendee: Attendee name to filter by
        """
        events = [
            {"event_id": eid, **e}
            for eid, e in self.state["events"].items()
            if e["date"] == date and (attendee is None or attendee in e["attendees"])
        ]
        return {"date": date, "events": sorted(events, key=lambda e: (e["start"], e["event_id"]))}

    @tool(params={"date": _DATE, "start": _TIME, "end": _TIME})
    def create_event(
        self, title: str, date: str, start: str, end: str, attendees: list[str] | None = None
    ) -> dict[str, Any]:
        """Create an event; it may not overlap another event on the same date.

        Args:
            title: Event title
            date: Date as YYYY-MM-DD
            start: Time as HH:MM (24-hour)
            end: Time as HH:MM (24-hour)
            attendees: Other attendees
        """
        self._checked_span(date, start, end)
        event_id = f"E{self.state['next_event']}"
        self.state["next_event"] += 1
        self.state["events"][event_id] = {
            "title": title,
            "date": date,
            "start": start,
            "end": end,
            "attendees": sorted(attendees or []),
        }
        return {"event_id": event_id, **self.state["events"][event_id]}

    @tool(params={"date": _DATE, "start": _TIME, "end": _TIME})
    def update_event(
        self,
        event_id: str,
        date: str | None = None,
        start: str | None = None,
        end: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Change an event's date and/or times (and optionally its title).

        Args:
            event_id: Event id, e.g. E3
            date: Date as YYYY-MM-DD
            start: Time as HH:MM (24-hour)
            end: Time as HH:MM (24-hour)
            title: New title
        """
        event = self._event(event_id)
        new = {
            **event,
            **{
                k: v
                for k, v in {"date": date, "start": start, "end": end, "title": title}.items()
                if v is not None
            },
        }
        self._checked_span(new["date"], new["start"], new["end"], ignore=event_id)
        event.update(new)
        return {"event_id": event_id, **event}

    @tool
    def delete_event(self, event_id: str) -> dict[str, Any]:
        """Delete an event.

        Args:
            event_id: Event id
        """
        self._event(event_id)
        del self.state["events"][event_id]
        return {"deleted": event_id}

    @tool(
        params={
            "date": _DATE,
            "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 600},
            "day_start": {**_TIME, "default": "09:00"},
            "day_end": {**_TIME, "default": "17:00"},
        }
    )
    def find_free_slots(
        self, date: str, duration_minutes: int, day_start: str = "09:00", day_end: str = "17:00"
    ) -> dict[str, Any]:
        """Free time slots of at least the given length on a date, within working hours.

        Args:
            date: Date as YYYY-MM-DD
            duration_minutes: Length of a slot, 5 to 600 minutes
            day_start: Time as HH:MM (24-hour)
            day_end: Time as HH:MM (24-hour)
        """
        cursor, stop = _minutes(day_start), _minutes(day_end)
        busy = sorted(
            (_minutes(e["start"]), _minutes(e["end"]))
            for e in self.state["events"].values()
            if e["date"] == date
        )
        slots = []
        for start, end in [*busy, (stop, stop)]:
            slot_end = min(start, stop)
            if slot_end - cursor >= duration_minutes:
                slots.append({"start": _hhmm(cursor), "end": _hhmm(slot_end)})
            cursor = max(cursor, end)
        return {"date": date, "slots": slots}


SIMULATORS: dict[str, type[Simulator]] = {cls.domain: cls for cls in (FileSystem, Shop, Calendar)}
