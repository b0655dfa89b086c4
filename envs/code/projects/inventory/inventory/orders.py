"""Orders: all-or-nothing reservation, bulk discounts, tax, cancellation."""

from inventory.stock import StockError

BULK_TIERS = ((100, 15), (50, 10), (10, 5))
"""(minimum units of one line, percent off), best tier first."""


class OrderError(Exception):
    pass


def bulk_discount(quantity):
    """Percent off for a line of ``quantity`` units."""
    for minimum, percent in BULK_TIERS:
        if quantity >= minimum:
            return percent
    return 0


def line_total_cents(price_cents, quantity):
    """Price times quantity minus the bulk discount, rounded half up to a cent."""
    gross = price_cents * quantity
    discount = (gross * bulk_discount(quantity) + 50) // 100
    return gross - discount


class Order:
    def __init__(self, order_id, lines, tax_percent=0):
        if not lines:
            raise OrderError("an order needs at least one line")
        self.order_id = order_id
        self.lines = dict(lines)
        self.tax_percent = tax_percent
        self.status = "new"
        self.prices = {}

    def subtotal_cents(self):
        return sum(line_total_cents(self.prices[sku], qty) for sku, qty in self.lines.items())

    def tax_cents(self):
        return (self.subtotal_cents() * self.tax_percent + 50) // 100

    def total_cents(self):
        return self.subtotal_cents() + self.tax_cents()

    def cancel(self, inventory):
        if self.status != "placed":
            raise OrderError(f"cannot cancel an order that is {self.status}")
        for sku, qty in self.lines.items():
            inventory.put_back(sku, qty)
        self.status = "cancelled"


def place_order(inventory, order):
    """Reserve every line or none: if any line lacks stock, nothing is taken."""
    if order.status != "new":
        raise OrderError(f"order {order.order_id} was already {order.status}")
    for sku, qty in order.lines.items():
        if qty <= 0:
            raise OrderError(f"bad quantity {qty} for {sku}")
        if not inventory.available(sku, qty):
            raise StockError(f"not enough {sku} for order {order.order_id}")
    for sku, qty in order.lines.items():
        inventory.remove(sku, qty)
        order.prices[sku] = inventory.get(sku).price_cents
    order.status = "placed"
    return order
