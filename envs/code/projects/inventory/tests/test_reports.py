from inventory.orders import Order, place_order
from inventory.reports import reorder_suggestions, stock_report, top_sellers
from inventory.stock import Inventory, Item


def make_inventory():
    inv = Inventory()
    inv.add(Item("A-1", "anchor", 1999, quantity=30))
    inv.add(Item("B-2", "bolt", 25, quantity=500))
    inv.add(Item("C-3", "clamp", 450, quantity=8))
    inv.add(Item("D-4", "drill", 8900, quantity=2))
    return inv


def test_stock_report():
    assert stock_report(make_inventory()) == [
        "A-1 anchor 30 @ 19.99",
        "B-2 bolt 500 @ 0.25",
        "C-3 clamp 8 @ 4.50",
        "D-4 drill 2 @ 89.00",
    ]


def test_top_sellers():
    inv = make_inventory()
    place_order(inv, Order("o1", {"B-2": 40, "A-1": 5, "C-3": 5}))
    place_order(inv, Order("o2", {"D-4": 1, "A-1": 1}))
    assert top_sellers(inv) == [("B-2", 40), ("A-1", 6), ("C-3", 5)]
    assert top_sellers(inv, k=1) == [("B-2", 40)]


def test_top_sellers_ties_and_cancelled():
    inv = make_inventory()
    place_order(inv, Order("o1", {"C-3": 2, "A-1": 2}))
    cancelled = place_order(inv, Order("o2", {"D-4": 2}))
    cancelled.cancel(inv)
    assert top_sellers(inv, k=5) == [("A-1", 2), ("C-3", 2)]


def test_reorder_suggestions():
    inv = make_inventory()
    suggestions = reorder_suggestions(inv, {"A-1": 4, "C-3": 3, "D-4": 0, "B-2": 10}, lead_time_days=5)
    assert suggestions == {"C-3": 13}


def test_reorder_suggestions_exact_cover():
    inv = make_inventory()
    assert reorder_suggestions(inv, {"C-3": 2}, lead_time_days=2, safety_days=2) == {}
    assert reorder_suggestions(inv, {"C-3": 2}, lead_time_days=3, safety_days=2) == {"C-3": 2}
