"""The command modules; ``hubtool.cli`` assembles them into one group."""
