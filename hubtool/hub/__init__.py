"""The local Hub: a Hugging Face Hub-compatible server (HTTP API, git, LFS, pages) that stock
clients use through HF_ENDPOINT. It imports nothing of hubtool but ``core`` and ``errors``."""
