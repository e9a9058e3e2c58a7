"""The local Hub's model pages: what a user sees of their card before publishing."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser import Browser, chromium
from tests.conftest import ROOT

ARTIFACTS = Path(os.environ.get("HUBTOOL_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


@pytest.fixture(scope="module")
def published(tmp_path_factory, hub) -> tuple[str, str]:
    """A model repo holding a hubtool card (the golden run's), weights, a tag and two commits."""
    import torch
    from safetensors.torch import save_file

    from hubtool.cards.base import BaseCard
    from hubtool.cards.stage import build_context, card_settings, read_run, render

    tmp = tmp_path_factory.mktemp("page")
    run = tmp / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run)
    save_file({"w": torch.zeros(64, 64)}, run / "model" / "model.safetensors")
    user = hub.user("pages")
    repo = f"{user.name}/reviews-bert"
    settings = card_settings({"repo_id": repo, "intended_uses": "Sorting reviews."})
    card = render(build_context(read_run(run), settings, BaseCard(license="mit"), hub.url))
    (run / "model" / "README.md").write_text(card)
    api = hub.api(user)
    api.create_repo(repo)
    api.upload_folder(repo_id=repo, folder_path=run / "model", commit_message="First version")
    api.create_tag(repo, tag="v1.0.0")
    return repo, (run / "model" / "model.safetensors").stat().st_size


def test_a_chat_widget_shows_its_turns_not_a_raw_list(hub):
    user = hub.user("chatpage")
    repo = f"{user.name}/chat"
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is <b>2 + 2</b>?"},
    ]
    meta = {"pipeline_tag": "text-generation", "widget": [{"messages": turns}]}
    card = "---\n" + json.dumps(meta) + "\n---\n\n# Chat\n"
    api = hub.api(user)
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo)
    _, _, page = get(f"{hub.url}/{repo}")
    widget = page.split('id="widget"')[1].split("</section>")[0]
    assert '<p class="turn"><strong>system</strong> Be brief.</p>' in widget
    assert "<strong>user</strong> What is &lt;b&gt;2 + 2&lt;/b&gt;?" in widget
    assert "{&#39;role&#39;" not in widget and "[{" not in widget


def test_widget_fields_are_labelled():
    from hubtool.hub.pages import widget_view

    qa = {"text": "Who?", "context": "Alice met Bob.", "example_title": "x"}
    shown = widget_view([qa, "raw"])
    assert shown == [[("", "Who?"), ("context", "Alice met Bob.")], [("", "raw")]]


def test_model_page_shows_card_tags_results_files_history(hub, published):
    from hubtool.core.output import size

    repo, weights = published
    status, headers, page = get(f"{hub.url}/{repo}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for section in ("Model details", "Training data", "Evaluation", "Bias, risks and limitations"):
        assert f">{section}</h2>" in page, section
    assert re.search(r"<table>\s*<thead>", page)  # Markdown tables rendered as tables
    assert '<code class="language-python">' in page  # the snippet as code
    for kind, label in (
        ("task", "text-classification"),
        ("language", "en"),
        ("license", "mit"),
        ("dataset", "alice/reviews"),
        ("base model", "finetune: google-bert/bert-base-uncased"),
    ):
        assert re.search(rf"<b>{kind}</b>{re.escape(label)}<", page), (kind, label)
    results = page.split('id="results"')[1].split("</section>")[0]
    assert "Validation accuracy</td><td>0.86</td>" in results
    assert "I really enjoyed this, it was great." in page.split('id="widget"')[1]
    files = page.split('id="files"')[1].split("</section>")[0]
    assert re.search(rf"model\.safetensors</span><span>{re.escape(size(weights))}", files)
    assert "First version" in page and "v1.0.0" in page.split('id="git-tags"')[1]


def test_page_never_runs_card_markup(hub, alice, tmp_path):
    repo = f"{alice.name}/hostile-card"
    (tmp_path / "README.md").write_text(
        "---\nlicense: mit\n---\n# Hi\n<script>alert(1)</script>\n"
        "[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
    )
    api = hub.api(alice)
    api.create_repo(repo)
    api.upload_folder(repo_id=repo, folder_path=tmp_path)
    _, _, page = get(f"{hub.url}/{repo}")
    assert "<script>" not in page and "<img" not in page
    assert 'href="javascript:' not in page


def test_missing_and_private_repos_are_not_shown(hub, alice):
    repo = f"{alice.name}/secret-page"
    hub.api(alice).create_repo(repo, private=True)
    for path in (f"/{repo}", "/nobody/nothing"):
        status, _, page = get(f"{hub.url}{path}")
        assert status == 404 and "secret" not in page.split("<main>")[1].split("No repository")[0]
    status, _, _ = get(f"{hub.url}/api/whoami-v2")
    assert status == 401  # API routes still answer as the API


def test_index_lists_public_models(hub, published):
    repo, _ = published
    status, _, page = get(f"{hub.url}/")
    assert status == 200 and f'href="/{repo}"' in page


# In the page: each word of the sidebar's headers (and header cells) that a line break cuts,
# and the box of each part of the layout.
PROBE = """(() => {
  const broken = [];
  for (const el of document.querySelectorAll("aside h2, aside th, nav.tabs a")) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g;
      for (let m = re.exec(node.data); m; m = re.exec(node.data)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  const boxes = {};
  for (const id of ["tabs", "card", "results", "widget", "use-this-model", "files", "history"]) {
    const el = document.getElementById(id);
    if (el) { const r = el.getBoundingClientRect(); boxes[id] = [r.x, r.y, r.width, r.height]; }
  }
  return {broken, boxes};
})()"""
LAYOUT = ROOT / "tests" / "data" / "page-layout.json"
EMPTY_HEAD = re.compile(r"<thead>\s*<tr>(?:\s*<th[^>]*>\s*</th>)+\s*</tr>")


@pytest.mark.skipif(chromium() is None, reason="Debian chromium is not installed")
def test_model_page_in_headless_chromium(hub, published):
    repo, _ = published
    browser = Browser()
    try:
        page = browser.load(f"{hub.url}/{repo}", probe=PROBE)
    finally:
        browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "model-page.png").write_bytes(page.png)
    (ARTIFACTS / "model-page-layout.json").write_text(json.dumps(page.probed["boxes"], indent=1))
    assert page.errors == [], page.errors
    assert page.png.startswith(b"\x89PNG") and len(page.png) > 20_000
    assert ">Evaluation results</h2>" in page.html and "<b>license</b>mit" in page.html
    assert page.html.count("<h2") >= 10  # the card's sections, rendered
    assert page.probed["broken"] == []  # no word of a header cut across lines
    if os.environ.get("UPDATE_LAYOUT"):
        LAYOUT.write_text(json.dumps(page.probed["boxes"], indent=1) + "\n")
    same_layout(page.probed["boxes"], json.loads(LAYOUT.read_text()))


def same_layout(now: dict[str, list[float]], before: dict[str, list[float]]) -> None:
    """The page's parts are where the previous layout had them: the same parts, each in its
    column at its width (8 px; fonts differ between machines), stacked in the same order."""
    assert now.keys() == before.keys(), (now.keys(), before.keys())
    for part, (x, _, width, _) in now.items():
        assert abs(x - before[part][0]) <= 8 and abs(width - before[part][2]) <= 8, part
    aside = [p for p in now if p not in ("tabs", "card")]
    assert sorted(aside, key=lambda p: now[p][1]) == sorted(aside, key=lambda p: before[p][1])
    assert now["card"][0] < now["results"][0]  # the sidebar beside the card, on its right


def test_page_tabs_counts_and_the_use_this_model_box(hub, published):
    repo, _ = published
    _, _, page = get(f"{hub.url}/{repo}")
    tabs = page.split('id="tabs"')[1].split("</nav>")[0]
    assert f'href="/{repo}/tree/main"' in tabs and "Files and versions" in tabs
    assert "Training metrics" not in tabs  # no event files in this repo
    assert re.search(r"Downloads: \d+</span><span>Likes: \d+", page)
    usage = page.split('id="use-this-model"')[1].split("</section>")[0]
    assert "from transformers import pipeline" in usage and html_quote(repo) in usage
    assert not EMPTY_HEAD.search(page)  # no header row of empty cells
    status, _, files = get(f"{hub.url}/{repo}/tree/main")
    assert status == 200 and 'class="on">Files and versions' in files
    assert f'href="/{repo}/resolve/main/model.safetensors"' in files


def html_quote(text: str) -> str:
    import html

    return html.escape(text)


def test_training_metrics_tab_draws_the_pushed_tensorboard_curves(
    hub, checkpoint, datasets_dir, tmp_path
):
    from tests.test_finetune import base_args, run

    user = hub.user("curves")
    repo = f"{user.name}/curves"
    args = base_args(
        checkpoint, datasets_dir / "cls", "run", "--max-steps", "12", "--eval-every", "4",
        "--report-to", "auto",  # the default, which base_args turns off
    )  # fmt: skip
    run([*args, "--push", "--hub-model-id", repo], tmp_path, env_extra={"HF_TOKEN": user.token},
        hub_url=hub.url)  # fmt: skip
    files = hub.api(user).list_repo_files(repo)
    events = [f for f in files if f.startswith("runs/") and "tfevents" in f]
    assert events  # the Hub's Training metrics tab finds these
    _, _, page = get(f"{hub.url}/{repo}")
    assert f'href="/{repo}/tensorboard"' in page.split('id="tabs"')[1]
    status, headers, metrics = get(f"{hub.url}/{repo}/tensorboard")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    board = metrics.split('id="training-metrics"')[1].split("</article>")[0]
    for tag in ("train/loss", "train/lr", "eval/accuracy", "eval/loss"):
        assert f"<figcaption>{tag}</figcaption><svg" in board, tag
    loss = board.split("<figcaption>train/loss</figcaption>")[1].split("</svg>")[0]
    points = re.search(r'<polyline[^>]* points="([^"]+)"', loss).group(1).split()
    assert len(points) == 12  # one per training step
    assert "<script" not in metrics


def test_event_files_that_are_not_events_draw_nothing():
    from hubtool.hub import tensorboard

    assert tensorboard.scalars([b"", b"\xff" * 40, (2**40).to_bytes(8, "little") + b"x" * 8]) == {}


def test_dataset_page(hub, alice, tmp_path):
    repo = f"{alice.name}/reviews-data"
    (tmp_path / "README.md").write_text(
        "---\nlicense: cc-by-4.0\nlanguage: [fr]\n---\n# Reviews\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n| | |\n|---|---|\n| size | small |\n"
    )
    tiny_rows = tmp_path / "train.jsonl"
    tiny_rows.write_text('{"text": "bon", "label": 1}\n')
    api = hub.api(alice)
    api.create_repo(repo, repo_type="dataset")
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=tmp_path)
    status, _, page = get(f"{hub.url}/datasets/{repo}")
    assert status == 200 and "<b>license</b>cc-by-4.0" in page and "train.jsonl" in page
    assert "<table>" in page and ">dataset</span>" in page
    assert "<td>size</td>" in page and not EMPTY_HEAD.search(page)  # a key-value table: no
    # empty header row above it
