"""Model cards: the card stage, its documented context, the checks, the base model's card and
the measured bias probes."""
