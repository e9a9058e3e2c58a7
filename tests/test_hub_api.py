"""The real ``huggingface_hub`` client against the local Hub, over real HTTP."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


def test_create_delete_private_and_exist_ok(hub, alice, repo_id):
    api = hub.api(alice)
    url = api.create_repo(repo_id, private=True)
    assert url.repo_id == repo_id and url.endpoint == hub.url
    again = api.create_repo(repo_id, exist_ok=True)
    assert again.repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo_id)
    assert exc.value.response.status_code == 409
    assert api.model_info(repo_id).private is True
    assert api.repo_exists(repo_id)
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)
    api.delete_repo(repo_id, missing_ok=True)


def test_new_repo_starts_with_initial_commit_and_gitattributes(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["initial commit"]
    assert api.list_repo_files(repo_id) == [".gitattributes"]
    attrs = Path(hf_hub_download(repo_id, ".gitattributes", endpoint=hub.url))
    assert attrs.stat().st_size == 1519
    assert "*.safetensors filter=lfs" in attrs.read_text()


def test_upload_folder_with_lfs_and_download(hub, alice, repo_id, tiny_folder, tmp_path):
    api = hub.api(alice)
    api.create_repo(repo_id)
    info = api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    assert len(info.oid) == 40
    files = api.list_repo_files(repo_id)
    assert files == [
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
        "sub/notes.txt",
    ]
    weights = (tiny_folder / "model.safetensors").read_bytes()
    model = api.model_info(repo_id, files_metadata=True)
    by_name = {s.rfilename: s for s in model.siblings}
    assert by_name["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert by_name["model.safetensors"].size == len(weights)
    assert by_name["sub/notes.txt"].lfs is None
    # oid of a regular file is the git blob SHA-1
    text = (tiny_folder / "sub" / "notes.txt").read_bytes()
    assert (
        by_name["sub/notes.txt"].blob_id
        == hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    )
    path = hf_hub_download(repo_id, "model.safetensors", endpoint=hub.url)
    assert Path(path).read_bytes() == weights
    snap = Path(snapshot_download(repo_id, endpoint=hub.url, cache_dir=tmp_path / "snap"))
    assert (snap / "sub" / "notes.txt").read_text() == "hello\n"
    assert (snap / "model.safetensors").read_bytes() == weights


def test_upload_file_bytes_regular_and_lfs(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"plain text", path_in_repo="a.txt", repo_id=repo_id)
    blob = os.urandom(2048)
    api.upload_file(path_or_fileobj=blob, path_in_repo="weights/w.bin", repo_id=repo_id)
    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["weights/w.bin"].lfs.sha256 == hashlib.sha256(blob).hexdigest()
    assert tree["a.txt"].lfs is None and tree["a.txt"].size == 10
    assert "weights" in tree  # directory rows in a recursive listing


def test_unchanged_reupload_makes_no_commit(hub, alice, repo_id, tiny_folder):
    api = hub.api(alice)
    api.create_repo(repo_id)
    first = api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    second = api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    assert second.oid == first.oid
    assert len(api.list_repo_commits(repo_id)) == 2


def test_create_commit_with_deletions(hub, alice, repo_id, tiny_folder):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    api.create_commit(
        repo_id,
        operations=[
            CommitOperationDelete("sub/"),
            CommitOperationDelete("config.json"),
            CommitOperationAdd("new.txt", b"new"),
        ],
        commit_message="Reshape",
        commit_description="Drop sub/ and config",
    )
    assert api.list_repo_files(repo_id) == [
        ".gitattributes",
        "README.md",
        "model.safetensors",
        "new.txt",
    ]
    top = api.list_repo_commits(repo_id)[0]
    assert (top.title, top.message) == ("Reshape", "Drop sub/ and config")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.txt", repo_id)


def test_stale_parent_commit_is_refused(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    parent = api.model_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(
            repo_id,
            operations=[CommitOperationAdd("two.txt", b"2")],
            commit_message="late",
            parent_commit=parent,
        )
    assert exc.value.response.status_code == 412
    assert "two.txt" not in api.list_repo_files(repo_id)


def test_tags_branches_refs_and_revisions(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id=repo_id)
    api.create_tag(repo_id, tag="v1.0", tag_message="first release")
    api.create_branch(repo_id, branch="dev")
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="f.txt", repo_id=repo_id, revision="dev")
    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first.oid)]
    assert refs.converts == []
    assert api.model_info(repo_id, revision="v1.0").sha == first.oid
    got = hf_hub_download(repo_id, "f.txt", revision="dev", endpoint=hub.url)
    assert Path(got).read_text() == "dev"
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="nope")
    api.delete_tag(repo_id, tag="v1.0")
    api.delete_branch(repo_id, branch="dev")
    refs = api.list_repo_refs(repo_id)
    assert refs.tags == [] and [b.name for b in refs.branches] == ["main"]
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(repo_id, tag="v1.0")


def test_create_pr_commits_to_a_pr_ref(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    info = api.upload_file(
        path_or_fileobj=b"x", path_in_repo="pr.txt", repo_id=repo_id, create_pr=True
    )
    assert info.pr_num == 1 and info.pr_revision == "refs/pr/1"
    assert "pr.txt" not in api.list_repo_files(repo_id)
    assert "pr.txt" in api.list_repo_files(repo_id, revision="refs/pr/1")
    refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]


def test_tree_paths_info_commits_and_exists(hub, alice, repo_id, tiny_folder):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    top = [e.path for e in api.list_repo_tree(repo_id)]
    assert top == [".gitattributes", "README.md", "config.json", "model.safetensors", "sub"]
    assert [e.path for e in api.list_repo_tree(repo_id, path_in_repo="sub")] == ["sub/notes.txt"]
    expanded = list(api.list_repo_tree(repo_id, path_in_repo="sub", expand=True))
    assert expanded[0].last_commit["title"] == "Upload folder using huggingface_hub"
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo_id, path_in_repo="nope"))
    infos = api.get_paths_info(repo_id, ["sub/notes.txt", "missing", "sub"])
    assert [i.path for i in infos] == ["sub/notes.txt", "sub"]
    assert api.file_exists(repo_id, "sub/notes.txt")
    assert not api.file_exists(repo_id, "sub/missing.txt")
    assert not api.repo_exists(f"{repo_id}-nope")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(f"{repo_id}-nope")
    formatted = api.list_repo_commits(repo_id, formatted=True)
    assert formatted[0].formatted_title == "Upload folder using huggingface_hub"


def test_model_info_derives_tags_like_the_hub(hub, alice, repo_id, tiny_folder):
    api = hub.api(alice)
    api.create_repo(repo_id)
    (tiny_folder / "README.md").write_text(
        "---\nlicense: apache-2.0\nlanguage: [fr, en]\ndatasets: [org/data]\n"
        "base_model: org/base\nbase_model_relation: finetune\ntags: [custom]\n---\n"
        "See https://arxiv.org/abs/1911.03894\n"
    )
    api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    info = api.model_info(repo_id)
    assert info.pipeline_tag == "fill-mask" and info.library_name == "transformers"
    for tag in (
        "transformers",
        "safetensors",
        "bert",
        "fill-mask",
        "custom",
        "fr",
        "en",
        "dataset:org/data",
        "arxiv:1911.03894",
        "license:apache-2.0",
        "base_model:org/base",
        "base_model:finetune:org/base",
    ):
        assert tag in info.tags, tag
    assert info.tags[-1] == "region:us"
    assert info.card_data.license == "apache-2.0"
    assert info.config == {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "tokenizer_config": {},
    }
    assert info.transformers_info.auto_model == "AutoModelForMaskedLM"


def test_list_models_filters_sort_and_pagination(hub):
    owner = hub.user("lister")
    api = hub.api(owner)
    for i, (lang, task) in enumerate(
        [("fr", "fill-mask"), ("fr", "text-classification"), ("de", "fill-mask")]
    ):
        rid = f"{owner.name}/m{i}"
        api.create_repo(rid)
        api.upload_file(
            path_or_fileobj=(
                f"---\nlanguage: {lang}\npipeline_tag: {task}\nlicense: mit\n---\n"
            ).encode(),
            path_in_repo="README.md",
            repo_id=rid,
        )
    fr = [m.id for m in api.list_models(author=owner.name, filter="fr")]
    assert sorted(fr) == [f"{owner.name}/m0", f"{owner.name}/m1"]
    both = [m.id for m in api.list_models(author=owner.name, filter=["fr", "fill-mask"])]
    assert both == [f"{owner.name}/m0"]
    assert [
        m.id for m in api.list_models(author=owner.name, pipeline_tag="fill-mask", search="m2")
    ] == [f"{owner.name}/m2"]
    assert len(list(api.list_models(author=owner.name, limit=2))) == 2
    full = next(iter(api.list_models(author=owner.name, full=True, cardData=True, limit=1)))
    assert full.sha and full.siblings and full.card_data.license == "mit"
    expanded = next(iter(api.list_models(author=owner.name, expand=["downloads"], limit=1)))
    assert expanded.downloads == 0 and expanded.tags is None


def test_listing_follows_link_pagination(hub, monkeypatch):
    from hubtool.hub import routes

    owner = hub.user("pager")
    api = hub.api(owner)
    for i in range(5):
        api.create_repo(f"{owner.name}/p{i}")
    monkeypatch.setattr(routes, "PAGE", 2)  # three pages of 2, 2 and 1
    ids = [m.id for m in api.list_models(author=owner.name)]
    assert sorted(ids) == [f"{owner.name}/p{i}" for i in range(5)]
    for i in range(4):
        api.upload_file(path_or_fileobj=b"x", path_in_repo=f"f{i}", repo_id=f"{owner.name}/p0")
    assert len(api.list_repo_files(f"{owner.name}/p0")) == 5  # tree pages follow Link too


def test_concurrent_commits_lose_nothing(hub, alice, repo_id):
    from concurrent.futures import ThreadPoolExecutor

    api = hub.api(alice)
    api.create_repo(repo_id)

    def write(i: int) -> str:
        return api.upload_file(
            path_or_fileobj=f"{i}".encode(), path_in_repo=f"f{i}.txt", repo_id=repo_id
        ).oid

    with ThreadPoolExecutor(8) as pool:
        oids = list(pool.map(write, range(16)))
    assert len(set(oids)) == 16
    assert sorted(api.list_repo_files(repo_id)) == sorted(
        [".gitattributes"] + [f"f{i}.txt" for i in range(16)]
    )
    git_dir = hub.service.git_path("model", repo_id)
    history = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-list", "--parents", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(len(line.split()) <= 2 for line in history.splitlines())  # linear: no merges
    assert len(history.splitlines()) == 17


def test_range_requests_on_resolve(hub, alice, repo_id):
    import httpx2 as httpx

    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo_id)
    url = f"{hub.url}/{repo_id}/resolve/main/digits.txt"
    r = httpx.get(url, headers={"Range": "bytes=2-4"})
    assert r.status_code == 206 and r.content == b"234"
    assert r.headers["Content-Range"] == "bytes 2-4/10"
    r = httpx.get(url, headers={"Range": "bytes=20-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10"
    head = httpx.head(url)
    assert head.headers["Content-Length"] == "10" and head.headers["X-Repo-Commit"]


def test_datasets_are_listed_and_read_with_their_own_prefix(hub, alice):
    api = hub.api(alice)
    repo_id = f"{alice.name}/corpus"
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"---\nlanguage: fr\nlicense: cc-by-4.0\n---\n# Corpus\n",
        path_in_repo="README.md",
        repo_id=repo_id,
        repo_type="dataset",
    )
    api.upload_file(
        path_or_fileobj=b"text,label\nbonjour,0\n",
        path_in_repo="data/train.csv",
        repo_id=repo_id,
        repo_type="dataset",
    )
    info = api.dataset_info(repo_id)
    assert {"language:fr", "license:cc-by-4.0", "format:csv"} <= set(info.tags)
    assert [d.id for d in api.list_datasets(author=alice.name, filter="language:fr")] == [repo_id]
    assert not api.repo_exists(repo_id)  # a dataset is not a model
    path = hf_hub_download(repo_id, "data/train.csv", repo_type="dataset", endpoint=hub.url)
    assert Path(path).read_text().startswith("text,label")


def test_downloads_are_counted_on_config_json(hub, alice, repo_id, tiny_folder):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_folder(folder_path=tiny_folder, repo_id=repo_id)
    assert api.model_info(repo_id).downloads == 0
    hf_hub_download(repo_id, "config.json", endpoint=hub.url)
    hf_hub_download(repo_id, "sub/notes.txt", endpoint=hub.url)
    assert api.model_info(repo_id).downloads == 1


def test_upload_folder_skips_what_the_repos_gitignore_names(hub, alice, repo_id, tmp_path):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"*.log\ncache/\n", path_in_repo=".gitignore", repo_id=repo_id)
    folder = tmp_path / "out"
    (folder / "cache").mkdir(parents=True)
    (folder / "train.log").write_text("noise")
    (folder / "cache" / "x.bin").write_bytes(b"cached")
    (folder / "config.json").write_text("{}")
    api.upload_folder(folder_path=folder, repo_id=repo_id)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", ".gitignore", "config.json"]


def test_super_squash_and_lfs_files_trim_what_a_repo_keeps(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    for i in range(3):
        api.upload_file(path_or_fileobj=os.urandom(2000 + i), path_in_repo=f"w{i}.bin",
                        repo_id=repo_id)  # fmt: skip
    files = sorted(api.list_repo_files(repo_id))
    api.super_squash_history(repo_id, commit_message="One commit")
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["One commit"]
    assert sorted(api.list_repo_files(repo_id)) == files  # the files are unchanged
    lfs = list(api.list_lfs_files(repo_id))
    assert sorted(f.filename for f in lfs) == ["w0.bin", "w1.bin", "w2.bin"]
    assert {f.size for f in lfs} == {2000, 2001, 2002} and all(f.ref == "main" for f in lfs)
    gone = [f for f in lfs if f.filename == "w0.bin"]
    api.permanently_delete_lfs_files(repo_id, gone)  # and the history rewritten without it
    assert sorted(f.filename for f in api.list_lfs_files(repo_id)) == ["w1.bin", "w2.bin"]
    assert not hub.service.lfs.has(gone[0].file_oid)
    assert "w0.bin" not in api.list_repo_files(repo_id)
    assert [c.title for c in api.list_repo_commits(repo_id)] == ["One commit"]
    with pytest.raises(HfHubHTTPError):
        list(hub.api(hub.user("eve")).list_lfs_files(repo_id))


def test_a_gated_repo_serves_its_files_to_granted_users_only(hub, alice, repo_id, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"# Gated\n", path_in_repo="README.md", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="auto")
    bob = hub.user("bob")
    theirs = hub.api(bob)
    for who, token in (("bob", bob.token), ("anonymous", False)):
        with pytest.raises(GatedRepoError):
            hf_hub_download(repo_id, "config.json", token=token, cache_dir=tmp_path / who)
    with pytest.raises(GatedRepoError):
        theirs.auth_check(repo_id)
    card = hf_hub_download(repo_id, "README.md", token=bob.token, cache_dir=tmp_path / "card")
    assert Path(card).read_text() == "# Gated\n"  # the card is for everyone, nothing else
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, ".gitattributes", token=bob.token, cache_dir=tmp_path / "ga")
    assert theirs.model_info(repo_id).gated == "auto"
    api.grant_access(repo_id, bob.name)
    theirs.auth_check(repo_id)
    got = hf_hub_download(repo_id, "config.json", token=bob.token, cache_dir=tmp_path / "ok")
    assert Path(got).read_bytes() == b"{}"
    assert [r.username for r in api.list_accepted_access_requests(repo_id)] == [bob.name]
    with pytest.raises(HfHubHTTPError):  # accepted already
        api.accept_access_request(repo_id, bob.name)
    api.reject_access_request(repo_id, bob.name, rejection_reason="not now")
    assert [r.username for r in api.list_rejected_access_requests(repo_id)] == [bob.name]
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", token=bob.token, cache_dir=tmp_path / "again")
    with pytest.raises(HfHubHTTPError):  # owners only
        list(theirs.list_accepted_access_requests(repo_id))


def test_a_moved_repo_keeps_answering_to_its_old_id_and_ids_ignore_case(hub, alice, tmp_path):
    from huggingface_hub import hf_hub_download

    api = hub.api(alice)
    old, new = f"{alice.name}/Old-Name", f"{alice.name}/new-name"
    api.create_repo(old)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=old)
    assert api.model_info(old.lower()).id == old  # any case finds it, named as created
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(f"{alice.name}/OLD-NAME")
    assert exc.value.response.status_code == 409
    api.move_repo(old, new)
    assert api.model_info(new).id == new
    assert api.model_info(old).id == new  # the old id leads to the moved repo
    got = hf_hub_download(old, "config.json", token=alice.token, cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == b"{}"
    api.create_repo(f"{alice.name}/taken")
    with pytest.raises(HfHubHTTPError, match=f"A model repository called {alice.name}/taken"):
        api.move_repo(new, f"{alice.name}/taken")
    api.create_repo(old)  # the old name can be taken again: then it is that repo's
    assert api.model_info(old).id == old and api.model_info(new).id == new
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api(hub.user("mallory")).move_repo(new, f"{alice.name}/stolen")
    assert exc.value.response.status_code == 403


def test_likes_are_counted_and_listed(hub, alice, repo_id):
    import httpx2 as httpx

    api = hub.api(alice)
    api.create_repo(repo_id)
    bob = hub.user("bob")
    for user in (alice, bob, bob):  # a second like by the same user counts once
        r = httpx.post(f"{hub.url}/api/models/{repo_id}/like",
                       headers={"Authorization": f"Bearer {user.token}"})  # fmt: skip
        assert r.status_code == 200
    assert api.model_info(repo_id).likes == 2
    assert api.list_liked_repos(bob.name).models == [repo_id]
    assert sorted(u.username for u in api.list_repo_likers(repo_id)) == sorted(
        [alice.name, bob.name]
    )
    hub.api(bob).unlike(repo_id)
    assert api.model_info(repo_id).likes == 1 and api.list_liked_repos(bob.name).total == 0
    with pytest.raises(RepositoryNotFoundError):
        api.unlike(f"{alice.name}/missing")


def test_an_org_may_make_its_new_repos_private_by_default(hub, alice):
    org = f"corp-{alice.name[-8:]}"
    hub.service.add_user(org, is_org=True, private_by_default=True)
    hub.service.add_member(org, alice.name)
    api = hub.api(alice)
    api.create_repo(f"{org}/secret")
    api.create_repo(f"{org}/open", private=False)
    assert api.model_info(f"{org}/secret").private
    assert not api.model_info(f"{org}/open").private


def test_copy_files_across_repos_duplicates_lfs_objects_without_sending_them(hub, alice):
    api = hub.api(alice)
    src, dst = f"{alice.name}/copy-src", f"{alice.name}/copy-dst"
    api.create_repo(src)
    api.create_repo(dst)
    weights = os.urandom(5000)
    api.upload_file(path_or_fileobj=weights, path_in_repo="data/w.bin", repo_id=src)
    api.upload_file(path_or_fileobj=b"notes", path_in_repo="data/notes.txt", repo_id=src)
    api.copy_files(f"hf://{src}/data", f"hf://{dst}/copied")
    copied = sorted(api.list_repo_files(dst))
    assert copied == [".gitattributes", "copied/notes.txt", "copied/w.bin"]
    with open(api.hf_hub_download(dst, "copied/w.bin"), "rb") as fh:
        assert fh.read() == weights


def test_the_hubs_small_rules_and_words(hub, alice, repo_id):
    import httpx2 as httpx
    from huggingface_hub import CommitOperationDelete
    from huggingface_hub.errors import RevisionNotFoundError

    api = hub.api(alice)
    api.create_repo(repo_id)
    answer = httpx.get(f"{hub.url}/api/models/{repo_id}")
    assert answer.headers["x-request-id"].startswith("Root=1-")  # on every answer
    card = "\n\n---\nlicense: not-a-license\n---\n# x\n"  # front matter after blank lines
    checked = httpx.post(
        f"{hub.url}/api/validate-yaml", json={"content": card, "repoType": "model"}
    )
    assert checked.status_code == 400 and "license" in checked.text
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="..\\evil", repo_id=repo_id)
    assert exc.value.response.status_code == 422
    api.upload_file(path_or_fileobj=b"x", path_in_repo="folder/..\\name", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"y", path_in_repo="sub/a.txt", repo_id=repo_id)
    api.create_commit(repo_id, [CommitOperationDelete("sub")], commit_message="no slash")
    assert "sub/a.txt" not in api.list_repo_files(repo_id)  # a folder, named without "/"
    stale = api.list_repo_commits(repo_id)[-1].commit_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"z", path_in_repo="z", repo_id=repo_id,
                        parent_commit=stale)  # fmt: skip
    assert "The branch was updated since you opened this page" in str(exc.value)
    with pytest.raises(HfHubHTTPError, match="Cannot delete refs/heads/main"):
        api.delete_branch(repo_id, branch="main")
    with pytest.raises(RevisionNotFoundError):  # the revision is checked before the name
        api.create_tag(repo_id, tag="not a valid tag", revision="nowhere")


def test_a_user_and_an_org_list_their_repos_with_their_storage(hub, alice):
    api = hub.api(alice)
    mine, secret = f"{alice.name}/stored", f"{alice.name}/hidden"
    api.create_repo(mine)
    api.create_repo(secret, private=True)
    api.upload_file(path_or_fileobj=os.urandom(3000), path_in_repo="w.bin", repo_id=mine)
    listed = {r.id: r for r in api.list_user_repos()}
    assert {mine, secret} <= set(listed)
    assert listed[secret].visibility == "private" and listed[mine].visibility == "public"
    assert listed[mine].storage >= 3000 + 0  # its LFS object and its git objects
    org = f"team-{alice.name[-8:]}"
    hub.service.add_user(org, is_org=True)
    hub.service.add_member(org, alice.name)
    api.create_repo(f"{org}/shared")
    assert [r.id for r in api.list_user_repos(namespace=org)] == [f"{org}/shared"]
    with pytest.raises(HfHubHTTPError):  # not a member
        list(hub.api(hub.user("outsider")).list_user_repos(namespace=org))
