"""The README's main command: `hubtool demo` (its --quick form) runs the whole journey on real
material, offline, twice; the repos, cards and pages it leaves behind are checked."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests import warm
from tests.conftest import ROOT, client_env

ASSETS = ROOT / ".demo-assets"
pytestmark = pytest.mark.slow  # real checkpoints: `make test-slow` (CI runs it after `make test`)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[str]]:
    if not (ASSETS / ".installed").exists():
        pytest.skip("the demo's real assets are not installed (make setup)")
    work = tmp_path_factory.mktemp("demo")
    env = client_env("http://127.0.0.1:9", work / "unused")  # the demo starts its own Hub
    env.pop("HF_ENDPOINT")
    outputs = []
    for _run in (1, 2):  # can be run twice
        proc = warm.run(
            [
                sys.executable,
                "-m",
                "hubtool",
                "demo",
                "--quick",
                "--workdir",
                str(work / "d"),
                "--assets",
                str(ASSETS),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        outputs.append((proc.stdout, proc.stderr))
    return work / "d", outputs


def test_demo_walks_the_whole_journey(demo):
    _, outputs = demo
    for stdout, out in outputs:  # commands' data on stdout, the demo's talk on stderr
        for step in ("1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7"):
            assert step in out
        (found,) = [line for line in stdout.splitlines() if line.startswith("demo/bert-mini-fr ")]
        assert found.split()[1] == "ready"  # search found it, fit for the task
        assert "perplexity on conversational French:" in out
        for repo in ("demo/bert-mini-fr", "demo/minilm-election-tweets", "demo/bert-mini-fr-chat"):
            assert "Pushed to http" in out and f"/{repo} (" in out
        assert "hf_" not in out + stdout  # the token is never shown


def test_demo_cards_and_pages(demo):
    from hubtool.hub.server import BackgroundHub

    workdir, _ = demo
    card = (workdir / "runs" / "minilm-election-tweets" / "model" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["license"] == "apache-2.0"  # carried from the real MiniLM card
    assert meta["datasets"] == ["demo/election-tweets-2016"] and meta["language"] == ["en"]
    fr = (workdir / "runs" / "bert-mini-fr-chat" / "model" / "README.md").read_text()
    fr_meta = yaml.safe_load(fr.split("---\n")[1])
    assert fr_meta["language"] == ["fr"] and fr_meta["base_model"] == "demo/bert-mini-fr"
    assert "[MASK]" in fr_meta["widget"][0]["text"]
    with (
        BackgroundHub(workdir / "hub") as hub,
        urllib.request.urlopen(f"{hub.url}/demo/minilm-election-tweets") as page,
    ):
        html = page.read().decode()
    assert "Evaluation results" in html and "<b>base model</b>" in html
