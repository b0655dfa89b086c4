"""A small stock and order model for a shop (prices in integer cents)."""

from inventory.orders import Order, OrderError, bulk_discount, place_order
from inventory.reports import reorder_suggestions, stock_report, top_sellers
from inventory.stock import Inventory, Item, StockError

__all__ = [
    "Inventory",
    "Item",
    "Order",
    "OrderError",
    "StockError",
    "bulk_discount",
    "place_order",
    "reorder_suggestions",
    "stock_report",
    "top_sellers",
]
