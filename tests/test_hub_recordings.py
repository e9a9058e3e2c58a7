"""The local Hub answers in the shapes huggingface.co answered in the real recordings.

Reads ``../shared/data/hub-recordings/extracted/`` (skipped when absent). Requests are
replayed against the local Hub with the recording's namespace swapped for a test user;
model-info recordings are compared against a repo with the same kind of files.
"""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest

from tests.conftest import SHARED

EXTRACTED = SHARED / "data" / "hub-recordings" / "extracted"
pytestmark = pytest.mark.skipif(not EXTRACTED.is_dir(), reason="no ../shared recordings")

# Keys of the real model page that describe huggingface.co's own serving, not the repo.
NOT_APPLICABLE = {"inference"}


def recording(name: str) -> dict:
    return json.loads((EXTRACTED / name).read_text())


def shape(value):
    """A JSON value's type, recursing one level into objects."""
    if isinstance(value, dict):
        return {k: type(v).__name__ for k, v in value.items()}
    return type(value).__name__


def assert_same_shape(real: dict, ours: httpx.Response, ignore: set[str] = frozenset()) -> None:
    assert ours.status_code == real["status"], ours.text
    real_type = real["response_headers"]["Content-Type"][0].split(";")[0]
    assert ours.headers["Content-Type"].split(";")[0] == real_type
    body = ours.json() if real_type == "application/json" else ours.text
    want = shape(real["response_body"])
    got = shape(body)
    if isinstance(want, dict):
        assert isinstance(got, dict)
        want = {k: v for k, v in want.items() if k not in ignore}
        got = {k: v for k, v in got.items() if k in want}
    assert got == want


def replay(hub, real: dict, namespace: str, token: str) -> httpx.Response:
    uri = real["uri"].replace("https://huggingface.co", hub.url)
    uri = uri.replace("/user/", f"/{namespace}/")
    body = (real["request_body"] or "").replace(
        '"organization": "user"', f'"organization": "{namespace}"'
    )
    return httpx.request(
        real["method"], uri, content=body.encode(), headers={"Authorization": f"Bearer {token}"}
    )


def test_repo_lifecycle_answers_match_recordings(hub):
    user = hub.user("rec")
    for name in (
        "POST_api_repos_create_200.json",
        "POST_api_repos_create_409.json",
        "POST_api_spaces_user_tmp_test_space_preupload_main_200.json",
        "POST_api_spaces_user_tmp_test_space_commit_main_200.json",
        "GET_api_spaces_user_tmp_test_space_revision_main_expand_xetEnabled_200.json",
        "DELETE_api_repos_delete_200.json",
    ):
        real = recording(name)
        ours = replay(hub, real, user.name, user.token)
        assert_same_shape(real, ours)
        if name.startswith("POST_api_repos_create"):
            assert ours.json()["url"] == f"{hub.url}/spaces/{user.name}/tmp_test_space"


@pytest.mark.parametrize(
    "name,architecture,tokenizer",
    [
        ("GET_api_models_google_bert_bert_base_uncased_200.json", "BertForMaskedLM", "[MASK]"),
        (
            "GET_api_models_deepset_roberta_base_squad2_200.json",
            "RobertaForQuestionAnswering",
            "<mask>",
        ),
        (
            "GET_api_models_sentence_transformers_paraphrase_albert_small_v2_200.json",
            "AlbertModel",
            "[MASK]",
        ),
    ],
)
def test_model_info_matches_recordings(hub, name, architecture, tokenizer):
    import struct

    user = hub.user("info")
    api = hub.api(user)
    repo_id = f"{user.name}/like-{architecture.lower()}"
    api.create_repo(repo_id)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})
    weights = struct.pack("<Q", len(header)) + header.encode() + bytes(24)
    real = recording(name)
    card = "---\nlicense: apache-2.0\nlanguage: en\n---\n# Model\n"
    if real["response_body"].get("model-index"):
        card = (
            "---\nlicense: apache-2.0\nmodel-index:\n- name: m\n  results:\n  - task: "
            "{type: question-answering}\n    dataset: {type: squad_v2, name: SQuAD}\n"
            "    metrics: [{type: exact_match, value: 79.9}]\n---\n"
        )
    for path, content in (
        ("README.md", card.encode()),
        (
            "config.json",
            json.dumps({"architectures": [architecture], "model_type": "bert"}).encode(),
        ),
        ("tokenizer_config.json", json.dumps({"mask_token": tokenizer}).encode()),
        ("model.safetensors", weights),
    ):
        api.upload_file(path_or_fileobj=content, path_in_repo=path, repo_id=repo_id)
    ours = httpx.get(f"{hub.url}/api/models/{repo_id}")
    assert_same_shape(real, ours, ignore=NOT_APPLICABLE)
    body = ours.json()
    real_keys = [k for k in real["response_body"] if k not in NOT_APPLICABLE]
    assert [k for k in body if k in real_keys] == real_keys  # same keys, same order
    assert body["safetensors"] == {"parameters": {"F32": 6}, "total": 6}
    assert (
        body["transformersInfo"]["auto_model"]
        == real["response_body"]["transformersInfo"]["auto_model"]
    )
