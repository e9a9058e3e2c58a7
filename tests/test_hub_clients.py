"""Other real clients: the `hf` CLI, transformers, datasets, ModelCard and git (+ git-lfs).

Each runs in a subprocess with its own HF_HOME, so it imports the libraries fresh with
HF_ENDPOINT pointing at the local Hub, exactly as a user's script would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import client_env, run_python

HF = str(Path(sys.executable).with_name("hf"))


def hf(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [HF, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_hf_cli_upload_download_and_list(hub, alice, repo_id, tiny_folder, tmp_path):
    env = client_env(hub.url, tmp_path / "home", alice.token)
    hf(["repos", "create", repo_id], env, tmp_path)
    hf(["upload", repo_id, str(tiny_folder), "."], env, tmp_path)
    out = tmp_path / "dl"
    hf(["download", repo_id, "--local-dir", str(out)], env, tmp_path)
    assert (out / "model.safetensors").read_bytes() == (
        tiny_folder / "model.safetensors"
    ).read_bytes()
    assert (out / "sub" / "notes.txt").read_text() == "hello\n"
    listing = hf(
        ["models", "ls", "--author", alice.name, "--filter", "fr", "--format", "json"],
        env,
        tmp_path,
    )
    assert repo_id in [row["id"] for row in json.loads(listing)]


def test_transformers_push_to_hub_then_from_pretrained(hub, alice, repo_id, tmp_path):
    code = f"""
import torch
from transformers import AutoModelForSequenceClassification as Auto
from transformers import BertConfig, BertForSequenceClassification
torch.manual_seed(0)
cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=32, num_labels=3)
model = BertForSequenceClassification(cfg).eval()
model.push_to_hub("{repo_id}")
again = Auto.from_pretrained("{repo_id}")
ids = torch.tensor([[1, 2, 3]])
assert torch.allclose(model(ids).logits, again(ids).logits)
print("ok", again.config.num_labels)
"""
    proc = run_python(code, client_env(hub.url, tmp_path / "home", alice.token), tmp_path)
    assert "ok 3" in proc.stdout
    info = hub.api(alice).model_info(repo_id)
    assert info.pipeline_tag == "text-classification"
    assert info.safetensors.total > 0


def test_datasets_push_to_hub_then_load_dataset(hub, alice, tmp_path):
    repo_id = f"{alice.name}/tweets"
    code = f"""
import datasets
ds = datasets.Dataset.from_dict({{"text": ["bonjour", "salut", "merci"], "label": [0, 1, 0]}})
ds.push_to_hub("{repo_id}")
back = datasets.load_dataset("{repo_id}")
assert back["train"]["text"] == ["bonjour", "salut", "merci"], back
print("rows", back["train"].num_rows)
"""
    proc = run_python(code, client_env(hub.url, tmp_path / "home", alice.token), tmp_path)
    assert "rows 3" in proc.stdout
    info = hub.api(alice).dataset_info(repo_id)
    assert "format:parquet" in info.tags and info.tags[-1] == "region:us"


def test_model_card_validate_and_push(hub, alice, repo_id, tmp_path):
    code = f"""
from huggingface_hub import ModelCard, create_repo
card = ModelCard("---\\nlicense: mit\\nlanguage: fr\\n---\\n# Card\\n")
card.validate()
bad = ModelCard("---\\nlicense: not-a-license\\n---\\n# Card\\n")
try:
    bad.validate()
except ValueError as exc:
    assert '"license" must be one of' in str(exc), exc
else:
    raise SystemExit("invalid license accepted")
create_repo("{repo_id}")
card.push_to_hub("{repo_id}")
print(ModelCard.load("{repo_id}").data.license)
"""
    proc = run_python(code, client_env(hub.url, tmp_path / "home", alice.token), tmp_path)
    assert proc.stdout.strip().endswith("mit")


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed")
def test_git_clone_brings_lfs_files_byte_identical(hub, alice, repo_id, tiny_folder, tmp_path):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path)}
    subprocess.run(
        ["git", "lfs", "install", "--skip-repo"], env=env, check=True, capture_output=True
    )
    dest = tmp_path / "clone"
    proc = subprocess.run(
        ["git", "clone", "-q", f"{hub.url}/{repo_id}", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (dest / "model.safetensors").read_bytes() == (
        tiny_folder / "model.safetensors"
    ).read_bytes()
    log = subprocess.run(
        ["git", "-C", str(dest), "log", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log == ["Upload folder using huggingface_hub", "initial commit"]
    head = subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert head == api.model_info(repo_id).sha


def test_git_clone_and_push_of_a_private_repo_need_the_token(hub, alice, repo_id, tmp_path):
    api = hub.api(alice)
    api.create_repo(repo_id, private=True)
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "HOME": str(tmp_path),
        "GIT_LFS_SKIP_SMUDGE": "1",
    }
    anon = subprocess.run(
        ["git", "clone", "-q", f"{hub.url}/{repo_id}", str(tmp_path / "a")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert anon.returncode != 0
    host = hub.url.removeprefix("http://")
    authed = subprocess.run(
        [
            "git",
            "clone",
            "-q",
            f"http://{alice.name}:{alice.token}@{host}/{repo_id}",
            str(tmp_path / "b"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert authed.returncode == 0, authed.stderr
    assert (tmp_path / "b" / ".gitattributes").exists()
    push = subprocess.run(
        ["git", "-C", str(tmp_path / "b"), "push", "origin", "HEAD:dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert push.returncode == 0, push.stderr  # pushes go through the commit API's checks
    assert "dev" in [b.name for b in api.list_repo_refs(repo_id).branches]
    readonly = subprocess.run(
        ["git", "-C", str(tmp_path / "b"), "push",
         f"http://{alice.name}:{alice.read_token}@{host}/{repo_id}", "HEAD:other"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert readonly.returncode != 0 and "403" in readonly.stderr  # a read token
