"""What every stage shares and that imports nothing else of hubtool but ``errors``: task and
language tables, card metadata parsing, repo-id rules, Hub settings, the run directory,
terminal output, bounded YAML."""
