"""``python -m scaletrain.scaling``: the user's command; the code is scaletrain.driver.scaling (driver-side)."""
