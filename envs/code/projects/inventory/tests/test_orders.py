import pytest

from inventory.orders import Order, OrderError, bulk_discount, line_total_cents, place_order
from inventory.stock import Inventory, Item, StockError


def make_inventory():
    inv = Inventory()
    inv.add(Item("A-1", "anchor", 1999, quantity=3))
    inv.add(Item("B-2", "bolt", 25, quantity=500))
    return inv


@pytest.mark.parametrize(
    "quantity,percent", [(1, 0), (9, 0), (10, 5), (49, 5), (50, 10), (99, 10), (100, 15), (1000, 15)]
)
def test_bulk_discount(quantity, percent):
    assert bulk_discount(quantity) == percent


def test_line_total_without_discount():
    assert line_total_cents(1999, 2) == 3998


def test_line_total_rounds_half_up():
    # 10 x 25 = 250 cents, 5% = 12.5 -> 13
    assert line_total_cents(25, 10) == 237


def test_order_needs_lines():
    with pytest.raises(OrderError):
        Order("o1", {})


def test_place_order_takes_stock():
    inv = make_inventory()
    order = place_order(inv, Order("o1", {"A-1": 2, "B-2": 10}))
    assert order.status == "placed"
    assert inv.get("A-1").quantity == 1
    assert inv.get("B-2").quantity == 490


def test_place_order_all_or_nothing():
    inv = make_inventory()
    with pytest.raises(StockError):
        place_order(inv, Order("o1", {"B-2": 10, "A-1": 4}))
    assert inv.get("B-2").quantity == 500
    assert inv.get("A-1").quantity == 3


def test_place_order_exact_stock():
    inv = make_inventory()
    place_order(inv, Order("o1", {"A-1": 3}))
    assert inv.get("A-1").quantity == 0


def test_place_order_bad_quantity():
    with pytest.raises(OrderError):
        place_order(make_inventory(), Order("o1", {"A-1": 0}))


def test_place_order_twice():
    inv = make_inventory()
    order = place_order(inv, Order("o1", {"A-1": 1}))
    with pytest.raises(OrderError):
        place_order(inv, order)


def test_totals_with_tax():
    inv = make_inventory()
    order = place_order(inv, Order("o1", {"A-1": 1, "B-2": 100}, tax_percent=8))
    assert order.subtotal_cents() == 1999 + 2125
    assert order.tax_cents() == 330
    assert order.total_cents() == 4124 + 330


def test_cancel_returns_stock():
    inv = make_inventory()
    order = place_order(inv, Order("o1", {"A-1": 2}))
    order.cancel(inv)
    assert order.status == "cancelled"
    assert inv.get("A-1").quantity == 3
    assert inv.sold["A-1"] == 0


def test_cancel_only_placed_orders():
    inv = make_inventory()
    order = Order("o1", {"A-1": 1})
    with pytest.raises(OrderError):
        order.cancel(inv)
    place_order(inv, order)
    order.cancel(inv)
    with pytest.raises(OrderError):
        order.cancel(inv)
