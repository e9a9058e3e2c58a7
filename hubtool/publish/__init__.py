"""Publishing: what belongs in the repo, one-commit pushes, background pushes while training,
releases behind a metrics gate, and the CI workflow."""
