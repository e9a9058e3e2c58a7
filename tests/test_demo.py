"""The README's main command: `hubtool demo` runs end to end, twice, offline."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import client_env


def test_demo_runs_twice(tmp_path, hub):
    env = client_env("http://127.0.0.1:9", tmp_path / "unused")  # the demo starts its own Hub
    env.pop("HF_ENDPOINT")
    for _run in (1, 2):
        proc = subprocess.run(
            [sys.executable, "-m", "hubtool", "demo", "--workdir", str(tmp_path / "demo")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "demo/tiny-bert-fr" in proc.stderr and "fill-mask" in proc.stderr
        assert "loaded back with AutoModelForMaskedLM" in proc.stderr
        assert "Cloned with git" in proc.stderr
    assert "hf_" not in proc.stderr + proc.stdout  # the token is never shown
    assert (tmp_path / "demo" / "clone" / "model.safetensors").exists()
    assert "guess for [MASK]: None" not in proc.stderr
    from hubtool.train import load_tokenizer

    tokenizer = load_tokenizer(str(tmp_path / "demo" / "clone"))  # a real one, not empty
    assert tokenizer.tokenize("paris est la capitale") == ["paris", "est", "la", "capitale"]
