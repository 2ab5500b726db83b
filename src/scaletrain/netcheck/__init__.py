"""``python -m scaletrain.netcheck``: the user's command; the code is scaletrain.driver.netcheck (driver-side)."""
