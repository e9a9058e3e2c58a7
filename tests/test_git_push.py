"""``git push`` to the local Hub (issue 18): over smart HTTP with the token as the password,
LFS objects through the batch API, through the commit API's checks (a refused push moves no
ref), the metadata refreshed as after an API commit; a pull request's author pushes to it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def has_lfs() -> bool:
    return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0


def clone(hub, user, repo: str, where: Path) -> Path:
    host = hub.url.split("//", 1)[1]
    git("clone", f"http://{user.name}:{user.token}@{host}/{repo}", str(where), cwd=where.parent)
    git("config", "user.email", f"{user.name}@example.org", cwd=where)
    git("config", "user.name", user.name, cwd=where)
    if has_lfs():
        git("lfs", "install", "--local", cwd=where)
    return where


@pytest.fixture
def pushed(hub, alice, tmp_path) -> tuple[str, Path]:
    repo = f"{alice.name}/pushed"
    hub.api(alice).create_repo(repo)
    return repo, clone(hub, alice, repo, tmp_path / "clone")


@pytest.mark.skipif(not has_lfs(), reason="git-lfs is not installed")
def test_a_push_with_lfs_lands_like_an_api_commit(hub, alice, pushed, tmp_path):
    from huggingface_hub import hf_hub_download

    repo, work = pushed
    weights = os.urandom(3 << 20)
    (work / "README.md").write_text("---\nlicense: mit\n---\n# Pushed with git\n")
    (work / "model.safetensors").write_bytes(weights)  # *.safetensors: LFS by .gitattributes
    git("add", ".", cwd=work)
    git("commit", "-m", "Weights and a card", cwd=work)
    git("push", "origin", "main", cwd=work)
    api = hub.api(alice)
    info = api.model_info(repo)
    assert info.sha == git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert info.card_data["license"] == "mit"  # metadata refreshed as after an API commit
    (entry,) = [f for f in api.list_repo_tree(repo) if f.path == "model.safetensors"]
    assert entry.lfs is not None and entry.size == len(weights)
    got = hf_hub_download(repo, "model.safetensors", token=alice.token, cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == weights


def test_a_push_the_commit_api_would_refuse_moves_no_ref(hub, alice, pushed):
    repo, work = pushed
    api = hub.api(alice)
    before = api.model_info(repo).sha
    (work / "big.txt").write_bytes(b"x" * (11 << 20))  # not LFS: over 10 MiB
    git("add", "big.txt", cwd=work)
    git("commit", "-m", "Too big", cwd=work)
    proc = git("push", "origin", "main", cwd=work, check=False)
    assert proc.returncode != 0 and "larger than 10 MiB (big.txt)" in proc.stderr
    assert api.model_info(repo).sha == before
    git("reset", "--hard", "HEAD~1", cwd=work)
    (work / "card.txt").write_text("fine")
    git("add", ".", cwd=work)
    git("commit", "-m", "A pointer to nothing", cwd=work)
    lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 12\n"
    (work / "ghost.bin").write_text(lfs)  # a pointer whose object was never uploaded
    git("-c", "filter.lfs.clean=cat", "-c", "filter.lfs.required=false", "add", ".", cwd=work)
    git("commit", "-m", "Ghost", cwd=work)
    proc = git("-c", "lfs.pushurl=none", "push", "--no-verify", "origin", "main", cwd=work,
               check=False)  # fmt: skip
    assert proc.returncode != 0 and "never uploaded to this repo" in proc.stderr
    assert api.model_info(repo).sha == before
    proc = git("push", "origin", ":main", cwd=work, check=False)
    assert proc.returncode != 0 and "Cannot delete refs/heads/main" in proc.stderr
    assert api.model_info(repo).sha == before


def test_a_pull_requests_author_pushes_to_it_and_nowhere_else(hub, alice, pushed, tmp_path):
    from huggingface_hub import CommitOperationAdd

    repo, _ = pushed
    bob = hub.user("bob")
    theirs = hub.api(bob)
    opened = theirs.create_commit(
        repo, [CommitOperationAdd("idea.txt", b"idea\n")], commit_message="Idea", create_pr=True
    )
    work = clone(hub, bob, repo, tmp_path / "bob")
    git("fetch", "origin", "refs/pr/1:pr", cwd=work)
    git("checkout", "pr", cwd=work)
    (work / "idea.txt").write_text("a better idea\n")
    git("commit", "-am", "Better idea", cwd=work)
    proc = git("push", "origin", "pr:main", cwd=work, check=False)
    assert proc.returncode != 0 and "only to your own pull requests" in proc.stderr
    git("push", "origin", "pr:refs/pr/1", cwd=work)
    details = hub.api(alice).get_discussion_details(repo, opened.pr_num)
    assert [e.summary for e in details.events if e.type == "commit"] == ["Idea", "Better idea"]
    assert "a better idea" in details.diff
    host = hub.url.split("//", 1)[1]
    proc = git("push", f"http://bob:hf_wrong@{host}/{repo}", "pr:refs/pr/1", cwd=work, check=False)
    assert proc.returncode != 0 and "Authentication failed" in proc.stderr
