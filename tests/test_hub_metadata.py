"""validate-yaml answers and catalog import, as users of search and cards rely on them."""

from __future__ import annotations

import gzip
import json

import httpx2 as httpx
import pytest

from tests.conftest import SHARED

CARDS = SHARED / "data" / "hub-recordings" / "hf_hub_cards"
CATALOG = SHARED / "data" / "hub-catalog"


def validate(hub, content: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.post(
        f"{hub.url}/api/validate-yaml",
        json={"content": content, "repoType": "model"},
        headers=headers,
    )


@pytest.mark.parametrize(
    "content,status,needle",
    [
        ("---\nlicense: mit\nlanguage: [fr, en]\n---\n# ok\n", 200, None),
        ("---\nlicense: mit\nlanguage: fra\nunknown_key: 1\n---\n", 200, None),
        ("# no metadata\n", 200, "empty or missing yaml metadata"),
        ("---\nlicense: [mit\n---\n", 400, "Invalid YAML in README.md"),
        ("---\n- a\n- b\n---\n", 400, "must be of type object"),
        ("---\nlicense: not-a-license\n---\n", 400, '"license" must be one of'),
        ("---\nlanguage: xx-notacode-toolong\n---\n", 400, '"language"'),
        ("---\nmodel-index:\n- name: m\n  results:\n  - metrics: []\n---\n", 400, "model-index"),
    ],
)
def test_validate_yaml_rules(hub, content, status, needle):
    r = validate(hub, content)
    assert r.status_code == status
    body = r.json()
    text = " ".join(m["message"] for m in body["errors"] + body["warnings"])
    if needle:
        assert needle in text
    assert set(body) == {"errors", "warnings"}


def test_validate_yaml_text_plain_for_modelcard(hub):
    r = validate(hub, "---\nlicense: nope\n---\n", accept="text/plain")
    assert r.status_code == 400 and r.text.startswith('- Error: "license" must be one of')
    assert validate(hub, "---\nlicense: mit\n---\n", accept="text/plain").status_code == 200


def test_validate_yaml_always_answers_json(hub):
    r = httpx.post(f"{hub.url}/api/validate-yaml", content=b"{not json")
    assert r.status_code == 400 and r.json()["errors"]


@pytest.mark.skipif(not CARDS.is_dir(), reason="no ../shared cards")
def test_real_sample_cards_validate_as_on_the_hub(hub):
    results = {p.name: validate(hub, p.read_text()).status_code for p in CARDS.glob("*.md")}
    assert results["sample_simple.md"] == 200
    assert results["sample_windows_line_breaks.md"] == 200
    assert results["sample_no_metadata.md"] == 200
    assert results["sample_invalid_model_index.md"] == 400
    assert results["sample_invalid_card_data.md"] == 400


def test_import_catalog_jsonl_gz_and_search(hub, tmp_path):
    from hubtool.hub.catalog import import_catalog
    from hubtool.hub.service import HubService

    rows = [
        {
            "modelId": "camembert/camembert-large",
            "sha": "df7d",
            "tags": ["pytorch", "camembert", "fr", "transformers"],
            "pipeline_tag": None,
            "siblings": [{"rfilename": "config.json"}],
            "config": {"model_type": "camembert"},
            "private": False,
            "downloads": 4124,
            "likes": 2,
            "lastModified": "2020-12-11T21:35:25.000Z",
        },
        {
            "modelId": "t5-base",
            "tags": ["fr", "translation"],
            "pipeline_tag": "translation",
            "downloads": 1_000_000,
            "likes": 5,
        },
        {"broken": True},
    ]
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    svc = HubService(tmp_path / "hub")
    assert import_catalog(svc, path) == (2, 1)
    assert import_catalog(svc, path) == (2, 1)  # idempotent: upserts
    from hubtool.hub.server import BackgroundHub

    with BackgroundHub(tmp_path / "hub") as local:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=local.url, token=False)
        ids = [m.id for m in api.list_models(filter="fr", sort="downloads")]
        assert ids == ["t5-base", "camembert/camembert-large"]
        info = api.model_info("camembert/camembert-large")
        assert info.config == {"model_type": "camembert"} and info.pipeline_tag is None
        assert info.downloads == 4124 and info.sha == "df7d"


@pytest.mark.skipif(not CATALOG.is_dir(), reason="no ../shared catalog")
def test_import_real_catalog_csv(tmp_path):
    from hubtool.hub.catalog import import_catalog
    from hubtool.hub.db import ListQuery
    from hubtool.hub.service import HubService

    svc = HubService(tmp_path / "hub")
    imported, _ = import_catalog(svc, CATALOG / "hub_models_2024-09-20_top9715_enochlev.csv")
    assert imported > 9000
    rows = svc.db.list_repos(ListQuery("model", filters=("fr", "fill-mask"), limit=50))
    ids = [r.repo_id for r in rows]
    assert "almanach/camembert-base" in ids
    assert rows[0].downloads >= rows[-1].downloads


def test_cli_import_catalog_rejects_bad_file(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubtool",
            "hub",
            "import-catalog",
            str(bad),
            "--data-dir",
            str(tmp_path / "hub"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: Cannot import") and "Traceback" not in proc.stderr
