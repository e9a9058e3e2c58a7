"""Test fixtures: a real local Hub on port 0, real clients, isolated HF_HOME and tokens.

The Hugging Face libraries read HF_ENDPOINT when they are imported, so the session's Hub is
started in ``pytest_configure``, before any test imports them. Each test gets its own
HF_HOME (cache, token store) and its own users and repo names, so no test depends on another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import tiny, warm

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
_SESSION: dict[str, object] = {}

CLIENT_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DISABLE_SAFETENSORS_CONVERSION": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def pytest_configure(config: pytest.Config) -> None:
    from hubtool.hub.server import BackgroundHub

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="hubtool-tests-"))
    hub = BackgroundHub(root / "hub").__enter__()
    os.environ.update(CLIENT_ENV, HF_ENDPOINT=hub.url, HF_HOME=str(root / "hf_home"))
    _SESSION.update(hub=hub, root=root)


def pytest_unconfigure(config: pytest.Config) -> None:
    hub = _SESSION.get("hub")
    if hub is not None:
        hub.__exit__()  # type: ignore[attr-defined]
        shutil.rmtree(_SESSION["root"], ignore_errors=True)  # type: ignore[arg-type]


@dataclass
class User:
    name: str
    token: str
    read_token: str


class Hub:
    """The session's local Hub, with helpers to make users and unique repo names."""

    def __init__(self, background) -> None:
        self.background = background
        self.url: str = background.url
        self.service = background.service

    def user(self, prefix: str = "user") -> User:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.service.add_user(name)
        return User(
            name,
            self.service.create_token(name, write=True),
            self.service.create_token(name, write=False),
        )

    def api(self, user: User | None = None, read_only: bool = False):
        from huggingface_hub import HfApi

        token = None if user is None else (user.read_token if read_only else user.token)
        return HfApi(endpoint=self.url, token=token or False)


@pytest.fixture(scope="session")
def hub() -> Hub:
    return Hub(_SESSION["hub"])


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HF_HOME per test, for the environment and for already-imported clients."""
    home = tmp_path / "hf_home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        for name, value in (
            ("HF_HOME", home),
            ("HF_HUB_CACHE", home / "hub"),
            ("HF_ASSETS_CACHE", home / "assets"),
            ("HF_TOKEN_PATH", home / "token"),
            ("HF_STORED_TOKENS_PATH", home / "stored_tokens"),
        ):
            if hasattr(constants, name):
                monkeypatch.setattr(constants, name, str(value))
    return home


@pytest.fixture
def alice(hub: Hub) -> User:
    return hub.user("alice")


@pytest.fixture
def repo_id(alice: User) -> str:
    return f"{alice.name}/repo-{uuid.uuid4().hex[:6]}"


def client_env(hub_url: str, home: Path, token: str | None = None) -> dict[str, str]:
    """The environment for a client run in a subprocess (fresh imports, fresh HF_HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(CLIENT_ENV, HF_ENDPOINT=hub_url, HF_HOME=str(home))
    if token:
        env["HF_TOKEN"] = token
    return env


def run_python(
    code: str, env: dict[str, str], cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    proc = warm.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Iterator[Path]:
    """A model-like folder: card, config, a regular file and an LFS file."""
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\nlanguage: fr\n---\n# Tiny\n")
    (folder / "config.json").write_text(
        '{"architectures": ["BertForMaskedLM"], "model_type": "bert"}'
    )
    (folder / "model.safetensors").write_bytes(os.urandom(50_000))
    (folder / "sub" / "notes.txt").write_text("hello\n")
    yield folder


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return tiny.build_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    tiny.write_jsonl(root / "cls" / "train.jsonl", tiny.classification_rows(240))
    tiny.write_jsonl(root / "cls" / "validation.jsonl", tiny.classification_rows(60, seed=9))
    tiny.write_jsonl(root / "pairs.jsonl", tiny.pair_rows(200))
    tiny.write_jsonl(root / "ner" / "train.jsonl", tiny.token_rows(200))
    tiny.write_jsonl(root / "ner" / "validation.jsonl", tiny.token_rows(50, seed=3))
    (root / "corpus.txt").write_text("\n".join(tiny.texts(300)) + "\n")
    multi = [{"text": t, "label": i % 3} for i, t in enumerate(tiny.texts(150))]
    tiny.write_jsonl(root / "multi.jsonl", multi)
    return root


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """hubtool's wheel, built once from the checkout (as `pip wheel .` would for a user)."""
    dist = tmp_path_factory.mktemp("dist")
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *build],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return next(dist.glob("hubtool-*.whl"))


def serve_hub(data_dir: Path, url_file: Path, stdout: int = subprocess.DEVNULL) -> subprocess.Popen:
    """`hubtool hub serve` in a subprocess, returned once it has written its URL (30 s at
    most; the server's stderr is the failure message)."""
    url_file.unlink(missing_ok=True)
    args = ["hub", "serve", "--data-dir", str(data_dir), "--url-file", str(url_file)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubtool", *args], stdout=stdout, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if url_file.exists():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no URL")
