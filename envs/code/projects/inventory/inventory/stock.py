"""Items and the stock that holds them."""


class StockError(Exception):
    """Not enough stock, or an unknown item."""


class Item:
    def __init__(self, sku, name, price_cents, quantity=0, reorder_point=5):
        if price_cents < 0:
            raise ValueError("price cannot be negative")
        if quantity < 0:
            raise ValueError("quantity cannot be negative")
        self.sku = sku
        self.name = name
        self.price_cents = price_cents
        self.quantity = quantity
        self.reorder_point = reorder_point

    @property
    def value_cents(self):
        return self.price_cents * self.quantity

    def needs_reorder(self):
        """True when the quantity is at or below the reorder point."""
        return self.quantity <= self.reorder_point


class Inventory:
    def __init__(self):
        self._items = {}
        self.sold = {}

    def add(self, item):
        if item.sku in self._items:
            raise StockError(f"duplicate sku {item.sku}")
        self._items[item.sku] = item

    def get(self, sku):
        try:
            return self._items[sku]
        except KeyError:
            raise StockError(f"unknown sku {sku}") from None

    def __contains__(self, sku):
        return sku in self._items

    def items(self):
        return sorted(self._items.values(), key=lambda item: item.sku)

    def restock(self, sku, quantity):
        if quantity <= 0:
            raise ValueError("restock quantity must be positive")
        self.get(sku).quantity += quantity

    def available(self, sku, quantity):
        return self.get(sku).quantity >= quantity

    def remove(self, sku, quantity):
        """Take ``quantity`` units out of stock and count them as sold."""
        item = self.get(sku)
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        if quantity > item.quantity:
            raise StockError(f"only {item.quantity} of {sku} left, {quantity} requested")
        item.quantity -= quantity
        self.sold[sku] = self.sold.get(sku, 0) + quantity

    def put_back(self, sku, quantity):
        """Return units of a cancelled sale to stock."""
        item = self.get(sku)
        item.quantity += quantity
        self.sold[sku] = self.sold.get(sku, 0) - quantity

    def total_value_cents(self):
        return sum(item.value_cents for item in self._items.values())

    def low_stock(self):
        """SKUs at or below their reorder point, in sku order."""
        return [item.sku for item in self.items() if item.needs_reorder()]
