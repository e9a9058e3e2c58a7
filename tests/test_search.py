"""`hubtool search` and `hubtool info` against local Hubs loaded with catalogs.

A small catalog built here exercises every option and error; the real 29k-row catalog from
``../shared`` (when present) checks that the French fill-mask question gets a true answer.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hubtool.core.hubclient import HubSettings
from hubtool.hub.catalog import import_catalog
from hubtool.hub.server import BackgroundHub
from tests.conftest import SHARED, client_env

CATALOG = SHARED / "data" / "hub-catalog" / "hub_models_2022-02_saranscript_full.jsonl.gz"
HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate")


def row(
    repo_id,
    tags,
    pipeline=None,
    downloads=0,
    likes=0,
    config=None,
    card=None,
    params=None,
    last="2024-01-01T00:00:00.000Z",
):
    r = {
        "modelId": repo_id,
        "tags": tags,
        "pipeline_tag": pipeline,
        "downloads": downloads,
        "likes": likes,
        "config": config,
        "lastModified": last,
        "library_name": "transformers",
        "siblings": [{"rfilename": "config.json"}],
    }
    if card:
        r["cardData"] = card
    if params:
        r["safetensors"] = {"parameters": {"F32": params}, "total": params}
    return r


SMALL = [
    row(
        "acme/fr-mlm",
        ["fr", "fill-mask", "license:mit", "transformers"],
        "fill-mask",
        1000,
        5,
        {"architectures": ["CamembertForMaskedLM"], "model_type": "camembert"},
        params=110e6,
    ),
    row("acme/fr-untagged", ["fr", "transformers"], None, 500, 1, {"model_type": "camembert"}),
    row(
        "acme/multi-mlm",
        ["multilingual", "fill-mask", "license:mit"],
        "fill-mask",
        1500,
        5,
        {"architectures": ["XLMRobertaForMaskedLM"], "model_type": "xlm-roberta"},
        params=270e6,
    ),
    row(
        "acme/card-only",
        ["fill-mask", "transformers"],
        "fill-mask",
        800,
        0,
        {"architectures": ["BertForMaskedLM"], "model_type": "bert"},
        card={"language": "fr"},
    ),
    row(
        "acme/bert-base-french-cased",
        ["fill-mask"],
        "fill-mask",
        100,
        0,
        {"architectures": ["BertForMaskedLM"], "model_type": "bert"},
    ),
    row(
        "acme/fr-classifier",
        ["fr", "text-classification"],
        "text-classification",
        900,
        2,
        {"architectures": ["CamembertForSequenceClassification"], "model_type": "camembert"},
    ),
    row(
        "acme/t5-fr",
        ["fr", "translation"],
        "translation",
        1_000_000,
        50,
        {"architectures": ["T5WithLMHeadModel"], "model_type": "t5"},
    ),
    row(
        "acme/de-mlm",
        ["de", "fill-mask"],
        "fill-mask",
        5000,
        9,
        {"architectures": ["BertForMaskedLM"], "model_type": "bert"},
    ),
    row(
        "other/fr-mlm-apache",
        ["fr", "fill-mask", "license:apache-2.0"],
        "fill-mask",
        300,
        0,
        {"architectures": ["BertForMaskedLM"], "model_type": "bert"},
        params=500e6,
        last="2025-06-01T00:00:00.000Z",
    ),
]


def load_hub(tmp_path_factory, rows=None, path: Path | None = None) -> BackgroundHub:
    root = tmp_path_factory.mktemp("search-hub")
    if path is None:
        path = root / "rows.jsonl.gz"
        with gzip.open(path, "wt") as fh:
            fh.write("\n".join(json.dumps(r) for r in rows or []))
    from hubtool.hub.service import HubService

    import_catalog(HubService(root / "hub"), path)
    return BackgroundHub(root / "hub").__enter__()


@pytest.fixture(scope="module")
def small_hub(tmp_path_factory):
    hub = load_hub(tmp_path_factory, SMALL)
    yield hub
    hub.__exit__()


@pytest.fixture
def settings(small_hub, tmp_path) -> HubSettings:
    return HubSettings(small_hub.url, None, tmp_path / "hf_home")


def run_search(settings, **kwargs):
    from hubtool.core.languages import resolve_language
    from hubtool.discover.search import SearchQuery, search

    lang = kwargs.pop("lang", "fr")
    q = SearchQuery(
        task=kwargs.pop("task", "fill-mask"),
        language=resolve_language(lang) if lang else None,
        **kwargs,
    )
    return search(settings, q, refresh=True)


def cli(hub_url: str, home: Path, *args: str, token: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "hubtool", *args],
        env=client_env(hub_url, home, token),
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- languages and tasks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["fr", "FR", "fra", "fre", "french", "French", "français", "Francais"]
)
def test_language_spellings(text):
    from hubtool.core.languages import resolve_language

    assert resolve_language(text).code == "fr"


def test_unknown_language_suggests():
    from hubtool.core.languages import resolve_language
    from hubtool.errors import UsageError

    with pytest.raises(UsageError) as exc:
        resolve_language("frnch")
    assert "french" in exc.value.hint.lower()


def test_unknown_task_lists_close_matches():
    from hubtool.core.architectures import resolve_task
    from hubtool.errors import UsageError

    assert resolve_task("fill_mask") == "fill-mask"
    with pytest.raises(UsageError) as exc:
        resolve_task("text-clasification")
    assert "text-classification" in exc.value.hint


@pytest.mark.parametrize(
    "task,pipeline,archs,model_type,library,level",
    [
        ("fill-mask", None, [], "camembert", "transformers", "ready"),
        ("fill-mask", "translation", ["T5WithLMHeadModel"], "t5", "transformers", "no"),
        ("fill-mask", None, ["ElectraForPreTraining"], "electra", "transformers", "base"),
        ("text-classification", "fill-mask", ["CamembertForMaskedLM"], "camembert", None, "base"),
        ("text-classification", None, ["BertForSequenceClassification"], "bert", None, "ready"),
        ("token-classification", "token-classification", [], None, "flair", "no"),
        ("summarization", "translation", ["T5WithLMHeadModel"], "t5", None, "ready"),
        ("text-generation", None, ["BertForMaskedLM"], "bert", None, "no"),
    ],
)
def test_fit_for_task(task, pipeline, archs, model_type, library, level):
    from hubtool import tasks
    from hubtool.core.architectures import fit_for_task

    assert fit_for_task(task, pipeline, archs, model_type, library).level == level
    assert tasks.fit(task, pipeline, archs, model_type, library).level == level  # what search uses


def test_each_trainable_task_owns_its_fit():
    """Search asks the task's module for the tasks hubtool trains: a task that changes its
    rule changes what search says, with nothing else to edit."""
    from hubtool import tasks
    from hubtool.core.architectures import Fit

    class Picky(type(tasks.get("text-classification"))):  # type: ignore[misc]
        def fit(self, checkpoint):
            return Fit("no", "picky")

    original = tasks.BY_NAME["text-classification"]
    tasks.BY_NAME["text-classification"] = Picky()
    try:
        got = tasks.fit("text-classification", None, ["BertForSequenceClassification"], "bert")
    finally:
        tasks.BY_NAME["text-classification"] = original
    assert got == Fit("no", "picky")


# -- the small catalog ------------------------------------------------------------------------
def test_french_fill_mask_finds_what_tags_miss_and_ranks_by_fit(settings):
    results = run_search(settings)
    ids = [r.id for r in results]
    assert ids[0] == "acme/fr-mlm"  # dedicated + ready beats the more popular multilingual one
    assert ids.index("acme/fr-mlm") < ids.index("acme/multi-mlm")
    assert "acme/de-mlm" not in ids and "acme/t5-fr" not in ids
    by_id = {r.id: r for r in results}
    assert by_id["acme/fr-untagged"].fit == "ready"
    assert by_id["acme/fr-untagged"].why[1].startswith("no pipeline tag")
    assert by_id["acme/card-only"].why[0] == "card language: fr (no fr tag)"
    assert by_id["acme/bert-base-french-cased"].why[0] == "id names French"
    assert by_id["acme/multi-mlm"].multilingual and by_id["acme/multi-mlm"].fit == "ready"
    assert by_id["acme/fr-classifier"].fit == "base"
    assert ids.index("acme/fr-untagged") < ids.index("acme/fr-classifier")  # ready over base
    assert by_id["acme/fr-mlm"].parameters == 110_000_000


def test_filters_and_sorts(settings):
    assert [r.id for r in run_search(settings, license="apache-2.0")] == ["other/fr-mlm-apache"]
    assert {r.id for r in run_search(settings, author="other")} == {"other/fr-mlm-apache"}
    assert all(r.downloads >= 800 for r in run_search(settings, min_downloads=800))
    small = [r.id for r in run_search(settings, max_params=200_000_000)]
    assert "other/fr-mlm-apache" not in small and "acme/fr-mlm" in small
    by_dl = [r.downloads for r in run_search(settings, sort="downloads")]
    assert by_dl == sorted(by_dl, reverse=True)
    assert run_search(settings, sort="recent")[0].id == "other/fr-mlm-apache"
    assert len(run_search(settings, limit=2)) == 2
    assert [r.id for r in run_search(settings, text="french")] == ["acme/bert-base-french-cased"]
    unfit = {r.id: r for r in run_search(settings, include_unfit=True)}
    assert unfit["acme/t5-fr"].fit == "no"
    classify = {r.id: r.fit for r in run_search(settings, task="text-classification")}
    assert classify["acme/fr-classifier"] == "ready" and classify["acme/fr-mlm"] == "base"
    with_lib = {r.id for r in run_search(settings, library="transformers")}
    assert with_lib == {"acme/fr-mlm", "acme/fr-untagged", "acme/card-only"}
    no_lang = [r.id for r in run_search(settings, lang=None)]
    assert "acme/de-mlm" in no_lang


def test_cli_table_fits_80_columns_and_json_schema(small_hub, tmp_path):
    table = cli(small_hub.url, tmp_path, "search", "--task", "fill-mask", "--lang", "français")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "FIT", "LANG", "LICENSE", "PARAMS", "DL", "LIKES"]
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("acme/fr-mlm ") for line in lines)
    out = cli(small_hub.url, tmp_path, "search", "--task", "fill-mask", "--lang", "fr", "--json")
    data = json.loads(out.stdout)
    assert set(data[0]) == {
        "id",
        "fit",
        "fit_reason",
        "why",
        "languages",
        "multilingual",
        "language_count",
        "license",
        "library",
        "parameters",
        "downloads",
        "likes",
        "last_modified",
        "pipeline_tag",
        "score",
    }
    assert data[0]["id"] == "acme/fr-mlm" and data[0]["languages"] == ["fr"]
    assert isinstance(data[0]["score"], float) and isinstance(data[0]["why"], list)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--task", "fill-mak", "--lang", "fr"], 2, "fill-mask"),
        (["--task", "fill-mask", "--lang", "klingonese"], 2, "Unknown language"),
        (["--task", "fill-mask", "--max-params", "lots"], 2, "Invalid count"),
        (["--lang", "fr"], 2, "Missing option '--task'"),
    ],
)
def test_cli_errors(small_hub, tmp_path, args, code, needle):
    proc = cli(small_hub.url, tmp_path, "search", *args)
    assert proc.returncode == code and needle in proc.stderr and "Traceback" not in proc.stderr


def test_network_failure_is_fast_and_clear(tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    started = time.perf_counter()
    proc = cli(f"http://127.0.0.1:{port}", tmp_path, "search", "--task", "fill-mask")
    assert proc.returncode == 3 and "cannot reach" in proc.stderr
    assert time.perf_counter() - started < 15
    info = cli(f"http://127.0.0.1:{port}", tmp_path, "info", "acme/fr-mlm")
    assert info.returncode == 3


def test_bad_token_and_rate_limit(small_hub, tmp_path):
    proc = cli(small_hub.url, tmp_path, "search", "--task", "fill-mask", token="hf_invalid")
    assert proc.returncode == 4 and "refused the credentials" in proc.stderr

    class Limited(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(429)
            self.send_header("Retry-After", "30")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = cli(
            f"http://127.0.0.1:{server.server_port}", tmp_path, "search", "--task", "fill-mask"
        )
    finally:
        server.shutdown()
    assert proc.returncode == 3 and "rate-limiting" in proc.stderr and "30 s" in proc.stderr


def test_results_are_cached_briefly(small_hub, settings):
    from hubtool.core.languages import resolve_language
    from hubtool.discover.search import SearchQuery, search

    q = SearchQuery(task="fill-mask", language=resolve_language("fr"))
    first = search(settings, q)
    before = len(small_hub.server.requests)
    again = search(settings, q)
    assert len(small_hub.server.requests) == before  # served from HF_HOME/hubtool
    assert [r.id for r in again] == [r.id for r in first]
    search(settings, q, refresh=True)
    assert len(small_hub.server.requests) > before
    assert list((settings.hf_home / "hubtool" / "search").glob("*.json"))


def test_search_and_info_import_no_heavy_library(small_hub, tmp_path):
    code = (
        "import sys\nfrom hubtool.cli import main\n"
        "for argv in (['search', '--task', 'fill-mask', '--lang', 'fr'],"
        " ['info', 'acme/fr-mlm']):\n"
        "    sys.argv = ['hubtool', *argv]\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert e.code == 0\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=client_env(small_hub.url, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]")


# -- info ---------------------------------------------------------------------------------------
def test_info_of_a_real_repo(hub, alice, repo_id, tmp_path):
    import struct

    api = hub.api(alice)
    api.create_repo(repo_id)
    card = (
        "---\nlicense: apache-2.0\nlanguage: [fr]\ndatasets: [acme/tweets]\n"
        "base_model: acme/fr-mlm\nbase_model_relation: finetune\nmodel-index:\n- name: m\n"
        "  results:\n  - task: {type: text-classification}\n    dataset: {type: acme/tweets"
        ", name: Tweets, split: validation}\n    metrics: [{type: accuracy, value: 0.93}]\n"
        "---\n# Model\n"
    )
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}})
    weights = struct.pack("<Q", len(header)) + header.encode() + bytes(64)
    for path, content in (
        ("README.md", card.encode()),
        ("model.safetensors", weights),
        (
            "config.json",
            b'{"architectures": ["CamembertForSequenceClassification"], "model_type": "camembert"}',
        ),
    ):
        api.upload_file(path_or_fileobj=content, path_in_repo=path, repo_id=repo_id)
    out = cli(hub.url, tmp_path, "info", repo_id, "--json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert view["license"] == "apache-2.0" and view["languages"] == ["fr"]
    assert view["datasets"] == ["acme/tweets"] and view["base_model"] == ["acme/fr-mlm"]
    assert view["eval_results"][0]["metric"] == "accuracy"
    assert view["eval_results"][0]["value"] == 0.93
    assert view["parameters"] == 16
    tasks = {t["task"]: t["fit"] for t in view["tasks"]}
    assert tasks["text-classification"] == "ready" and tasks["token-classification"] == "base"
    sizes = {f["path"]: f["size"] for f in view["files"]}
    assert sizes["model.safetensors"] == len(weights)
    text = cli(hub.url, tmp_path, "info", repo_id)
    assert "Evaluation results (model-index):" in text.stdout and "Can serve:" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80
    missing = cli(hub.url, tmp_path, "info", f"{repo_id}-nope")
    assert missing.returncode == 5 and "not found" in missing.stderr


EXTRACTED = SHARED / "data" / "hub-recordings" / "extracted"


@pytest.mark.skipif(not EXTRACTED.is_dir(), reason="no ../shared recordings")
@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in EXTRACTED.glob("GET_api_models_*_200.json"))
    if EXTRACTED.is_dir()
    else [],
)
def test_recorded_model_info_parses_without_loss(name):
    from huggingface_hub import ModelInfo

    from hubtool.discover.info import view

    body = json.loads((EXTRACTED / name).read_text())["response_body"]
    v = view(ModelInfo(**body))
    card = body.get("cardData") or {}
    assert v.id == body["id"] and v.pipeline_tag == body.get("pipeline_tag")
    if card.get("license"):
        assert v.license == card["license"]
    langs = card.get("language")
    for lang in [langs] if isinstance(langs, str) else langs or []:
        assert lang in v.languages
    datasets = card.get("datasets") or []
    assert v.datasets == ([datasets] if isinstance(datasets, str) else datasets)
    if body.get("safetensors"):
        assert v.parameters == body["safetensors"]["total"]
    metrics = [m for e in body.get("model-index") or [] for r in e["results"] for m in r["metrics"]]
    assert len(v.eval_results) == len(metrics)
    assert len(v.files) == len(body["siblings"])


# -- the real catalog ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_hub(tmp_path_factory):
    if not CATALOG.exists():
        pytest.skip("no ../shared catalog")
    hub = load_hub(tmp_path_factory, path=CATALOG)
    yield hub
    hub.__exit__()


def test_real_catalog_french_fill_mask(real_hub, tmp_path):
    settings = HubSettings(real_hub.url, None, tmp_path)
    results = run_search(settings, limit=30)
    ids = [r.id for r in results]
    assert ids[0] == "camembert-base"
    assert "camembert/camembert-large" in ids  # tagged fr, no pipeline tag, no architectures
    french = {
        "flaubert/flaubert_base_cased",
        "cmarkea/distilcamembert-base",
        "flaubert/flaubert_small_cased",
    }
    assert french <= set(ids[:10])
    assert "t5-base" not in ids  # tagged fr, but a translation model
    multi = [r for r in results if r.multilingual]
    assert multi and all(ids.index(m.id) > ids.index("cmarkea/distilcamembert-base") for m in multi)
    assert "xlm-roberta-base" in ids  # found through the multilingual listing, flagged
    apache = run_search(settings, license="apache-2.0")
    assert apache and all(r.license == "apache-2.0" for r in apache)
    assert all(r.id.startswith("flaubert/") for r in run_search(settings, author="flaubert"))
