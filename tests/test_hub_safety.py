"""Privacy, permissions, bad input and crashes: what users must be able to trust."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import serve_hub


def _commit_body(path: str, content: bytes = b"x") -> bytes:
    lines = [
        {"key": "header", "value": {"summary": "s", "description": ""}},
        {
            "key": "file",
            "value": {
                "path": path,
                "encoding": "base64",
                "content": base64.b64encode(content).decode(),
            },
        },
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def test_private_repos_are_invisible_to_others(hub, alice, repo_id):
    bob = hub.user("bob")
    hub.api(alice).create_repo(repo_id, private=True)
    hub.api(alice).upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=repo_id)
    for api in (hub.api(bob), hub.api(None)):
        assert not api.repo_exists(repo_id)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(repo_id)
        assert repo_id not in [m.id for m in api.list_models(author=alice.name)]
    anon = httpx.get(f"{hub.url}/api/models/{repo_id}")
    assert anon.status_code == 401 and anon.headers["X-Error-Code"] == "RepoNotFound"
    authed = httpx.get(
        f"{hub.url}/api/models/{repo_id}", headers={"Authorization": f"Bearer {bob.token}"}
    )
    assert authed.status_code == 404 and authed.json() == {"error": "Repository not found"}
    raw = httpx.get(f"{hub.url}/{repo_id}/resolve/main/s.txt")
    assert raw.status_code == 401 and b"secret" not in raw.content
    assert repo_id in [m.id for m in hub.api(alice).list_models(author=alice.name)]


def test_writes_need_a_write_token_of_the_owner(hub, alice, repo_id):
    bob = hub.user("bob")
    hub.api(alice).create_repo(repo_id)
    for api in (hub.api(bob), hub.api(alice, read_only=True), hub.api(None)):
        with pytest.raises(HfHubHTTPError) as exc:
            api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
        assert exc.value.response.status_code in (401, 403)
        with pytest.raises(HfHubHTTPError):
            api.create_repo(f"{alice.name}/other")
    assert hub.api(alice).list_repo_files(repo_id) == [".gitattributes"]


def test_organization_members_can_write(hub):
    carol = hub.user("carol")
    org = f"org-{carol.name}"
    hub.service.add_user(org, is_org=True)
    hub.service.add_member(org, carol.name)
    api = hub.api(carol)
    assert api.whoami()["orgs"][0]["name"] == org
    api.create_repo(f"{org}/shared")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=f"{org}/shared")


def test_bad_token_is_401(hub):
    r = httpx.get(f"{hub.url}/api/whoami-v2", headers={"Authorization": "Bearer hf_wrong"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "../escape.txt",
        "/abs.txt",
        "a/../../b",
        ".git/config",
        "sub/.git/hooks/x",
        "nul\0byte",
        "a//b",
        "x" * 300,
        "/".join(["d"] * 600),
    ],
)
def test_bad_paths_are_refused_with_400(hub, alice, repo_id, path):
    hub.api(alice).create_repo(repo_id, exist_ok=True)
    r = httpx.post(
        f"{hub.url}/api/models/{repo_id}/commit/main",
        content=_commit_body(path),
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 400, r.text
    assert "Invalid path" in r.json()["error"]


def test_regular_files_over_10_mib_are_refused(hub, alice, repo_id):
    hub.api(alice).create_repo(repo_id)
    big = b"a" * (10 * 1024 * 1024 + 1)
    r = httpx.post(
        f"{hub.url}/api/models/{repo_id}/commit/main",
        content=_commit_body("big.txt", big),
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert r.status_code == 400 and "larger than 10 MiB" in r.json()["error"]


def test_lfs_file_never_uploaded_is_refused(hub, alice, repo_id):
    hub.api(alice).create_repo(repo_id)
    lines = [
        {"key": "header", "value": {"summary": "s"}},
        {
            "key": "lfsFile",
            "value": {"path": "w.bin", "algo": "sha256", "oid": "a" * 64, "size": 3},
        },
    ]
    r = httpx.post(
        f"{hub.url}/api/models/{repo_id}/commit/main",
        content="\n".join(json.dumps(x) for x in lines),
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert r.status_code == 400 and "never uploaded" in r.json()["error"]


def test_lfs_upload_with_wrong_bytes_is_rejected(hub, alice, repo_id):
    hub.api(alice).create_repo(repo_id)
    batch = httpx.post(
        f"{hub.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": "b" * 64, "size": 4}]},
        headers={"Authorization": f"Bearer {alice.token}"},
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert httpx.put(href, content=b"abcd").status_code == 400
    assert not hub.service.lfs.has("b" * 64)
    forged = href.replace("sig=", "sig=0")
    assert httpx.put(forged, content=b"abcd").status_code == 403


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/api/repos/create", b"not json"),
        ("POST", "/api/repos/create", b"[1, 2]"),
        ("POST", "/api/models/{repo}/commit/main", b"garbage\n"),
        ("POST", "/api/models/{repo}/commit/main", b'{"key":"header","value":{}}'),
        ("POST", "/api/models/{repo}/preupload/main", b'{"files": [{"path": 3}]}'),
        ("POST", "/api/models/{repo}/preupload/main", b'{"files": "x"}'),
        ("GET", "/api/models?limit=abc", b""),
        ("GET", "/api/models?cursor=%%%", b""),
        ("GET", "/api/models/{repo}/tree/main?cursor=x", b""),
        ("POST", "/{repo}.git/info/lfs/objects/batch", b'{"operation": "delete"}'),
        ("POST", "/api/models/{repo}/tag/main", b'{"tag": "../x"}'),
        ("POST", "/api/models/{repo}/branch/-bad", b"{}"),
        ("GET", "/api/models/{repo}/resolve/..%2F..%2Fetc/passwd", b""),
        ("GET", "/{repo}/resolve/%2E%2E/config", b""),
    ],
)
def test_bad_input_never_yields_a_5xx(hub, alice, repo_id, method, path, body):
    hub.api(alice).create_repo(repo_id, exist_ok=True)
    r = httpx.request(
        method,
        hub.url + path.format(repo=repo_id),
        content=body,
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")


def test_missing_entry_has_error_code_and_commit(hub, alice, repo_id):
    hub.api(alice).create_repo(repo_id)
    r = httpx.head(f"{hub.url}/{repo_id}/resolve/main/missing.txt")
    assert r.status_code == 404
    assert r.headers["X-Error-Code"] == "EntryNotFound" and len(r.headers["X-Repo-Commit"]) == 40
    r = httpx.head(f"{hub.url}/{repo_id}/resolve/nope/x")
    assert r.headers["X-Error-Code"] == "RevisionNotFound"
    assert "X-Xet-Hash" not in r.headers


def test_kill_9_mid_commit_leaves_old_or_new_commit(tmp_path):
    """Commits stream in while the server is SIGKILLed; the repo stays consistent."""
    from hubtool.hub.service import HubService

    data = tmp_path / "hub"
    svc = HubService(data)
    svc.add_user("kim")
    token = svc.create_token("kim", write=True)
    url_file = tmp_path / "url"
    proc = serve_hub(data, url_file)
    url = url_file.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    httpx.post(
        f"{url}/api/repos/create", json={"name": "crash", "organization": "kim"}, headers=headers
    ).raise_for_status()
    acknowledged = []
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import base64, json, httpx2 as httpx, sys
for i in range(10_000):
    body = "\\n".join(json.dumps(x) for x in [
        {{"key": "header", "value": {{"summary": f"c{{i}}"}}}},
        {{"key": "file", "value": {{"path": f"f{{i % 7}}.bin", "encoding": "base64",
          "content": base64.b64encode(bytes([i % 251]) * 200_000).decode()}}}}])
    try:
        r = httpx.post("{url}/api/models/kim/crash/commit/main", content=body,
                       headers={headers!r}, timeout=10)
    except Exception:
        break
    print(r.json()["commitOid"], flush=True)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out, _ = writer.communicate(timeout=60)
    acknowledged = out.split()
    assert len(acknowledged) >= 3
    git_dir = data / "repos" / "models" / "kim" / "crash.git"
    head = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the head is the last acknowledged commit, or the one in flight when the kill came
    assert (
        head == acknowledged[-1]
        or subprocess.run(
            [
                "git",
                "--git-dir",
                str(git_dir),
                "merge-base",
                "--is-ancestor",
                acknowledged[-1],
                head,
            ]
        ).returncode
        == 0
    )
    fsck = subprocess.run(
        ["git", "--git-dir", str(git_dir), "fsck", "--no-dangling"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr
    proc = serve_hub(
        data, tmp_path / "url2", stdout=subprocess.PIPE
    )  # the index heals from git at start
    try:
        url = (tmp_path / "url2").read_text().strip()
        info = httpx.get(f"{url}/api/models/kim/crash", headers=headers).json()
        assert info["sha"] == head
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    proc = serve_hub(tmp_path / "hub", tmp_path / "url", stdout=subprocess.PIPE)
    url = (tmp_path / "url").read_text().strip()
    assert proc.stdout is not None
    assert proc.stdout.readline().decode().strip() == url
    assert httpx.get(f"{url}/api/models").status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert b"stopped" in proc.stderr.read()  # type: ignore[union-attr]


def test_commit_with_the_current_head_as_parent_succeeds(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    head = api.model_info(repo_id).sha
    api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("a.txt", b"a")],
        commit_message="with parent",
        parent_commit=head,
    )
    assert "a.txt" in api.list_repo_files(repo_id)
