"""Reports over an inventory: stock value, top sellers, reorder suggestions."""


def stock_report(inventory):
    """One line per item: "SKU name qty @ price", prices as dollars with two decimals."""
    lines = []
    for item in inventory.items():
        dollars, cents = divmod(item.price_cents, 100)
        lines.append(f"{item.sku} {item.name} {item.quantity} @ {dollars}.{cents:02d}")
    return lines


def top_sellers(inventory, k=3):
    """The ``k`` best-selling SKUs as (sku, units) pairs; ties in sku order; unsold items left out."""
    sold = [(sku, units) for sku, units in inventory.sold.items() if units > 0]
    sold.sort(key=lambda pair: (-pair[1], pair[0]))
    return sold[:k]


def reorder_suggestions(inventory, daily_demand, lead_time_days, safety_days=2):
    """Units to order per SKU so stock covers the lead time plus safety days of demand.

    ``daily_demand`` maps SKU to units sold per day; items without demand are skipped.
    """
    suggestions = {}
    for item in inventory.items():
        demand = daily_demand.get(item.sku, 0)
        if demand <= 0:
            continue
        target = demand * (lead_time_days + safety_days)
        if item.quantity < target:
            suggestions[item.sku] = target - item.quantity
    return suggestions
