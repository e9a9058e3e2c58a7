"""Finding a checkpoint: ``search`` (which checkpoints can serve a task in a language) and
``info`` (one model in depth)."""
