"""``hubtool demo``: the whole journey on a local Hub seeded with real assets."""
