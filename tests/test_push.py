"""`hubtool push` and `finetune --push` against the local Hub, through the real client."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.test_finetune import base_args, run

CARD = """
card:
  intended_uses: Toy sentiment.
  out_of_scope: Anything real.
  limitations: Thirty words.
  authors: [Alice]
  contact: alice@example.org
  license: apache-2.0
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, checkpoint, datasets_dir) -> Path:
    """One tiny classification run with its card; tests push copies of it."""
    work = tmp_path_factory.mktemp("pushrun")
    (work / "hubtool.yaml").write_text(CARD)
    run(base_args(checkpoint, datasets_dir / "cls", "run", "--config", "hubtool.yaml"), work)
    return work / "run"


@pytest.fixture
def run_dir(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def push(run_dir: Path, user, hub, *args: str, check: bool = True, url: str | None = None):
    return run(
        ["push", str(run_dir), *args],
        run_dir.parent,
        env_extra={"HF_TOKEN": user.token},
        check=check,
        hub_url=url or hub.url,
    )


def edit_card(run_dir: Path, line: str) -> None:
    """A change only the card has (what a user does after reading it)."""
    card = run_dir / "model" / "README.md"
    card.write_text(card.read_text() + f"\n{line}\n")


def commits(hub, user, repo: str, revision: str = "main") -> list:
    return list(hub.api(user).list_repo_commits(repo, revision=revision))


def requests_during(hub, action) -> list[tuple[str, str]]:
    served = hub.background.server.requests
    before = len(served)
    action()
    return list(served[before:])


def test_push_creates_private_repo_in_one_commit_without_junk(run_dir, hub, alice):
    repo = f"{alice.name}/toy"
    model = run_dir / "model"
    (model / ".env").write_text("SECRET=1\n")
    (model / "token").write_text("not a real token\n")
    (model / "optimizer.pt").write_bytes(b"state")
    (model / "__pycache__").mkdir()
    (model / "__pycache__" / "x.pyc").write_bytes(b"\0")
    proc = push(run_dir, alice, hub, "--repo-id", repo, "--private", "--tag", "v1.0.0")
    assert proc.stdout.strip() == f"{hub.url}/{repo}"
    api = hub.api(alice)
    assert api.model_info(repo).private is True
    assert hub.api().repo_exists(repo) is False  # anonymous callers do not see it
    files = set(api.list_repo_files(repo))
    assert files == {
        ".gitattributes",
        "README.md",
        "config.json",
        "metrics.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert len(commits(hub, alice, repo)) == 2  # the repo's initial commit + one push
    (tag,) = api.list_repo_refs(repo).tags
    assert (tag.name, tag.target_commit) == ("v1.0.0", commits(hub, alice, repo)[0].commit_id)
    metrics = json.loads(Path(api.hf_hub_download(repo, "metrics.json")).read_text())
    assert "path" not in metrics["dataset"]  # no local path leaves the machine
    card = Path(api.hf_hub_download(repo, "README.md")).read_text()
    assert f'model="{repo}"' in card  # the card was rendered for this repo


def test_unchanged_push_makes_no_commit_and_few_requests(run_dir, hub, alice):
    repo = f"{alice.name}/again"
    push(run_dir, alice, hub, "--repo-id", repo)
    served = requests_during(hub, lambda: push(run_dir, alice, hub, "--repo-id", repo))
    assert len(commits(hub, alice, repo)) == 2
    writes = [r for r in served if r[0] not in ("GET", "HEAD")]
    assert writes == [("POST", "/api/validate-yaml")]  # the card check only
    assert len(served) <= 8, served


def test_changed_card_only_sends_one_small_file(run_dir, hub, alice):
    repo = f"{alice.name}/cardonly"
    push(run_dir, alice, hub, "--repo-id", repo)
    edit_card(run_dir, "One more line.")
    dry = push(run_dir, alice, hub, "--repo-id", repo, "--dry-run")
    assert re.search(r"change\s+README.md", dry.stdout)
    assert "1 file(s) to send" in dry.stdout and "+One more line." in dry.stdout
    served = requests_during(hub, lambda: push(run_dir, alice, hub, "--repo-id", repo))
    assert not [r for r in served if "lfs" in r[1] or r[0] == "PUT"]  # nothing large re-sent
    assert [r[1] for r in served if r[1].startswith(f"/api/models/{repo}/commit/")] == [
        f"/api/models/{repo}/commit/main"
    ]
    assert len(commits(hub, alice, repo)) == 3


def test_dry_run_changes_nothing(run_dir, hub, alice):
    repo = f"{alice.name}/dry"
    proc = push(run_dir, alice, hub, "--repo-id", repo, "--private", "--dry-run")
    assert f"would create private repo {repo}" in proc.stdout
    assert re.search(r"add\s+model.safetensors", proc.stdout)
    assert "Metadata check: passes" in proc.stdout
    assert hub.api(alice).repo_exists(repo) is False


def test_pull_request_mode_leaves_main_alone(run_dir, hub, alice):
    repo = f"{alice.name}/pr"
    push(run_dir, alice, hub, "--repo-id", repo)
    edit_card(run_dir, "Proposed.")
    proc = push(run_dir, alice, hub, "--repo-id", repo, "--create-pr")
    assert proc.stdout.strip().endswith("/discussions/1")
    api = hub.api(alice)
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]
    main_card = Path(api.hf_hub_download(repo, "README.md", revision="main")).read_text()
    assert "Proposed." not in main_card


def test_existing_tag_and_public_repo_are_never_overwritten(run_dir, hub, alice):
    repo = f"{alice.name}/guarded"
    push(run_dir, alice, hub, "--repo-id", repo, "--tag", "v1.0.0")
    push(run_dir, alice, hub, "--repo-id", repo, "--tag", "v1.0.0")  # same commit: fine
    edit_card(run_dir, "Changed.")
    proc = push(run_dir, alice, hub, "--repo-id", repo, "--tag", "v1.0.0", check=False)
    assert proc.returncode == 2 and "tag v1.0.0 already exists" in proc.stderr
    proc = push(run_dir, alice, hub, "--repo-id", repo, "--private", check=False)
    assert proc.returncode == 2 and "will not make it private" in proc.stderr
    assert len(commits(hub, alice, repo)) == 2  # neither refusal wrote anything
    assert hub.api(alice).model_info(repo).private is False


def test_a_token_in_a_file_stops_the_push(run_dir, hub, alice):
    (run_dir / "model" / "notes.txt").write_text("login with hf_" + "A" * 34 + "\n")
    proc = push(run_dir, alice, hub, "--repo-id", f"{alice.name}/leak", check=False)
    assert proc.returncode == 2 and "looks like a Hub token" in proc.stderr
    assert "A" * 34 not in proc.stderr
    assert hub.api(alice).repo_exists(f"{alice.name}/leak") is False


# -- a Hub that fails: 503s and dropped connections -------------------------------------------
class FlakyProxy:
    """Forwards to the Hub; the first matching requests fail as planned."""

    def __init__(self, target: str, faults: list[tuple[str, str, str]]) -> None:
        self.target = target.removeprefix("http://")
        self.faults = list(faults)  # (method, path regex, "503" | "drop" | "lose-answer")
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fault_for(self, method: str, path: str) -> str | None:
        for i, (m, pattern, action) in enumerate(self.faults):
            if m == method and re.search(pattern, path):
                del self.faults[i]
                return action
        return None

    def handle(self, req) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        fault = self.fault_for(req.command, req.path)
        if fault == "drop":
            req.close_connection = True
            req.connection.close()
            return
        if fault == "503":
            req.send_response(503)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        conn = http.client.HTTPConnection(self.target, timeout=60)
        headers = {k: v for k, v in req.headers.items() if k.lower() != "host"}
        conn.request(req.command, req.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        if fault == "lose-answer":  # the Hub did it; the client never hears
            req.close_connection = True
            req.connection.close()
            return
        req.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "faults",
    [
        [("POST", r"/commit/", "503"), ("POST", r"/commit/", "503")],
        [("POST", r"/preupload/", "drop")],
        [("POST", r"/commit/", "lose-answer")],
    ],
    ids=["503-twice", "dropped-connection", "answer-lost"],
)
def test_transient_failures_are_retried_without_partial_or_double_commits(
    run_dir, hub, alice, faults
):
    repo = f"{alice.name}/flaky"
    hub.api(alice).create_repo(repo)
    proxy = FlakyProxy(hub.url, faults)
    try:
        push(run_dir, alice, hub, "--repo-id", repo, url=proxy.url)
    finally:
        proxy.close()
    assert proxy.faults == []  # every planned failure happened
    assert len(commits(hub, alice, repo)) == 2  # exactly one commit, whatever failed
    assert "README.md" in hub.api(alice).list_repo_files(repo)


def test_canary_token_never_leaves_a_trace(run_dir, hub, alice):
    repo = f"{alice.name}/canary"
    proc = push(run_dir, alice, hub, "--repo-id", repo)
    bad = run(
        ["--debug", "push", str(run_dir), "--repo-id", "nobody/x"],
        run_dir.parent,
        env_extra={"HF_TOKEN": alice.token},
        check=False,
        hub_url=hub.url,
    )
    for text in (proc.stdout, proc.stderr, bad.stdout, bad.stderr):
        assert alice.token not in text
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert alice.token.encode() not in path.read_bytes(), path
    api = hub.api(alice)
    for name in api.list_repo_files(repo):
        assert alice.token.encode() not in Path(api.hf_hub_download(repo, name)).read_bytes()


# -- finetune --push --------------------------------------------------------------------------
def test_background_pushes_then_resume_from_the_hub_on_another_machine(
    tmp_path, checkpoint, datasets_dir, hub, alice
):
    repo = f"{alice.name}/bg"
    args = ("--epochs", "3", "--seed", "5")
    straight = run(base_args(checkpoint, datasets_dir / "cls", "straight", *args), tmp_path)
    assert straight.returncode == 0
    first = tmp_path / "machine-a"
    first.mkdir()
    proc = run(
        base_args(
            checkpoint,
            datasets_dir / "cls",
            "run",
            *args,
            "--push",
            "--hub-model-id",
            repo,
            "--push-strategy",
            "checkpoint",
        ),
        first,
        env_extra={"HF_TOKEN": alice.token},
        hub_url=hub.url,
    )
    assert f"Pushed to {hub.url}/{repo}" in proc.stderr
    titles = [c.title for c in commits(hub, alice, repo)]
    assert any(t.startswith("Training in progress") for t in titles)
    saved = [c.title for c in commits(hub, alice, repo, "hubtool-checkpoint")]
    assert any(t.startswith("Checkpoint at step") for t in saved)
    assert "README.md" in hub.api(alice).list_repo_files(repo)

    second = tmp_path / "machine-b"  # nothing local: everything comes from the Hub
    second.mkdir()
    resumed = run(
        base_args(checkpoint, datasets_dir / "cls", "run", *args, "--resume", f"hub:{repo}"),
        second,
        env_extra={"HF_TOKEN": alice.token},
        hub_url=hub.url,
    )
    assert "Resumed from" in resumed.stdout + resumed.stderr
    a = (tmp_path / "straight" / "model" / "model.safetensors").read_bytes()
    b = (second / "run" / "model" / "model.safetensors").read_bytes()
    assert a == b  # continued exactly where machine A's checkpoint left off


def test_failed_final_push_leaves_a_complete_run_that_push_finishes(
    tmp_path, checkpoint, datasets_dir, hub, alice
):
    repo = f"{alice.name}/later"
    proc = run(
        base_args(
            checkpoint,
            datasets_dir / "cls",
            "run",
            "--epochs",
            "1",
            "--push",
            "--hub-model-id",
            repo,
        ),
        tmp_path,
        env_extra={"HF_TOKEN": alice.token},
        check=False,
        hub_url="http://127.0.0.1:9",
    )
    assert proc.returncode == 3, proc.stderr
    assert "nothing needs retraining" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"
    assert (tmp_path / "run" / "model" / "README.md").is_file()
    push(tmp_path / "run", alice, hub, "--repo-id", repo)
    assert "model.safetensors" in hub.api(alice).list_repo_files(repo)


# -- publish: the release gate ----------------------------------------------------------------
def publish(run_dir: Path, user, hub, *args: str, check: bool = True):
    return run(
        ["publish", str(run_dir), *args],
        run_dir.parent,
        env_extra={"HF_TOKEN": user.token},
        check=check,
        hub_url=hub.url,
    )


def test_publish_gate_refuses_then_compares_with_the_last_release(run_dir, hub, alice):
    repo = f"{alice.name}/released"
    accuracy = json.loads((run_dir / "metrics.json").read_text())["metrics"]["accuracy"]
    proc = publish(
        run_dir,
        alice,
        hub,
        "--repo-id",
        repo,
        "--tag",
        "v1.0.0",
        "--require",
        f"accuracy>={accuracy:.4f}",
    )
    assert "No earlier release" in proc.stderr and "ok" in proc.stderr
    refused = publish(
        run_dir,
        alice,
        hub,
        "--repo-id",
        repo,
        "--tag",
        "v1.1.0",
        "--require",
        "accuracy>=1.01",
        "--require",
        "f1_macro>0",
        check=False,
    )
    assert refused.returncode == 8
    assert f"accuracy>=1.01: {accuracy:.4f} FAILS" in refused.stderr
    assert [t.name for t in hub.api(alice).list_repo_refs(repo).tags] == ["v1.0.0"]
    edit_card(run_dir, "Second release.")
    proc = publish(run_dir, alice, hub, "--repo-id", repo, "--tag", "v1.1.0")
    assert "Compared with v1.0.0:" in proc.stderr
    assert f"accuracy: {accuracy:.4f} -> {accuracy:.4f} (+0.0000)" in proc.stderr
    tags = {t.name for t in hub.api(alice).list_repo_refs(repo).tags}
    assert tags == {"v1.0.0", "v1.1.0"}
    bad = publish(
        run_dir, alice, hub, "--repo-id", repo, "--tag", "v2", "--require", "acc=>1", check=False
    )
    assert bad.returncode == 2 and "METRIC OP VALUE" in bad.stderr
