import pytest

from inventory.stock import Inventory, Item, StockError


def make_inventory():
    inv = Inventory()
    inv.add(Item("B-2", "bolt", 25, quantity=100, reorder_point=20))
    inv.add(Item("A-1", "anchor", 1999, quantity=3))
    inv.add(Item("C-3", "clamp", 450, quantity=5))
    return inv


def test_item_validation():
    with pytest.raises(ValueError):
        Item("X", "x", -1)
    with pytest.raises(ValueError):
        Item("X", "x", 1, quantity=-2)


def test_item_value():
    assert Item("X", "x", 250, quantity=4).value_cents == 1000


def test_needs_reorder_at_point():
    assert Item("X", "x", 1, quantity=5, reorder_point=5).needs_reorder()
    assert Item("X", "x", 1, quantity=4, reorder_point=5).needs_reorder()
    assert not Item("X", "x", 1, quantity=6, reorder_point=5).needs_reorder()


def test_duplicate_sku():
    inv = make_inventory()
    with pytest.raises(StockError):
        inv.add(Item("A-1", "again", 1))


def test_get_unknown():
    with pytest.raises(StockError):
        make_inventory().get("Z-9")


def test_contains_and_items_sorted():
    inv = make_inventory()
    assert "A-1" in inv
    assert "Z-9" not in inv
    assert [i.sku for i in inv.items()] == ["A-1", "B-2", "C-3"]


def test_restock():
    inv = make_inventory()
    inv.restock("A-1", 7)
    assert inv.get("A-1").quantity == 10
    with pytest.raises(ValueError):
        inv.restock("A-1", 0)


def test_available():
    inv = make_inventory()
    assert inv.available("A-1", 3)
    assert not inv.available("A-1", 4)


def test_remove_counts_sales():
    inv = make_inventory()
    inv.remove("B-2", 30)
    inv.remove("B-2", 5)
    assert inv.get("B-2").quantity == 65
    assert inv.sold == {"B-2": 35}


def test_remove_everything_left():
    inv = make_inventory()
    inv.remove("A-1", 3)
    assert inv.get("A-1").quantity == 0


def test_remove_too_many():
    inv = make_inventory()
    with pytest.raises(StockError):
        inv.remove("A-1", 4)
    assert inv.get("A-1").quantity == 3


def test_remove_non_positive():
    with pytest.raises(ValueError):
        make_inventory().remove("A-1", 0)


def test_put_back():
    inv = make_inventory()
    inv.remove("C-3", 4)
    inv.put_back("C-3", 1)
    assert inv.get("C-3").quantity == 2
    assert inv.sold["C-3"] == 3


def test_total_value():
    assert make_inventory().total_value_cents() == 25 * 100 + 1999 * 3 + 450 * 5


def test_low_stock():
    assert make_inventory().low_stock() == ["A-1", "C-3"]
