"""Discussions and pull requests on the local Hub (issue 18), through the real HfApi: open,
comment, edit, hide, rename, close and reopen; a pull request made by ``create_commit
(create_pr=True)``, by its author whether or not they may write to the repo, reviewed and
merged with a real git merge; a conflicting one refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError


@pytest.fixture
def repo(hub, alice) -> str:
    repo_id = f"{alice.name}/talk"
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"# Talk\n\nline\n", path_in_repo="README.md", repo_id=repo_id)
    return repo_id


def test_a_discussion_is_opened_commented_edited_hidden_renamed_and_closed(hub, alice, repo):
    api = hub.api(alice)
    bob = hub.user("bob")
    theirs = hub.api(bob)
    opened = theirs.create_discussion(repo, "Which license?", description="MIT or Apache?")
    assert opened.num == 1 and not opened.is_pull_request and opened.status == "open"
    assert opened.author == bob.name and opened.events[0].content == "MIT or Apache?"
    reply = api.comment_discussion(repo, opened.num, "Apache-2.0, **surely**.")
    assert reply.content == "Apache-2.0, **surely**."
    assert "<strong>surely</strong>" in reply.rendered
    edited = api.edit_discussion_comment(repo, opened.num, reply.id, "Apache-2.0.")
    assert edited.edited and edited.content == "Apache-2.0."
    assert edited.number_of_edits == 2  # the client counts versions: the first and the edit
    with pytest.raises(HfHubHTTPError) as info:  # only its author edits a comment
        theirs.edit_discussion_comment(repo, opened.num, reply.id, "MIT!")
    assert info.value.response.status_code == 403
    hidden = api.hide_discussion_comment(repo, opened.num, opened.events[0].id)  # repo owner
    assert hidden.hidden
    renamed = theirs.rename_discussion(repo, opened.num, "License: Apache or MIT?")
    assert (renamed.old_title, renamed.new_title) == ("Which license?", "License: Apache or MIT?")
    closed = theirs.change_discussion_status(repo, opened.num, "closed", comment="Thanks!")
    assert closed.new_status == "closed"
    details = api.get_discussion_details(repo, opened.num)
    kinds = [e.type for e in details.events]
    assert kinds == ["comment", "comment", "title-change", "comment", "status-change"]
    assert details.status == "closed" and details.title == "License: Apache or MIT?"
    assert [d.num for d in api.get_repo_discussions(repo, discussion_status="closed")] == [1]
    assert list(api.get_repo_discussions(repo, discussion_status="open")) == []
    carol = hub.api(hub.user("carol"))
    with pytest.raises(HfHubHTTPError) as info:  # neither its author nor a writer
        carol.change_discussion_status(repo, opened.num, "open")
    assert info.value.response.status_code == 403
    reopened = api.change_discussion_status(repo, opened.num, "open")
    assert reopened.new_status == "open"
    with pytest.raises(HfHubHTTPError) as info:
        hub.api().create_discussion(repo, "anonymous")  # no token
    assert info.value.response.status_code == 401


def test_a_pull_request_is_reviewed_and_merged_with_a_real_merge(hub, alice, repo):
    api = hub.api(alice)
    bob = hub.user("bob")
    theirs = hub.api(bob)  # bob cannot write to alice's repo, but may propose
    add = CommitOperationAdd("notes.txt", b"from bob\n")
    info = theirs.create_commit(repo, [add], commit_message="Add notes", create_pr=True)
    assert info.pr_num == 1 and info.pr_revision == "refs/pr/1"
    more = CommitOperationAdd("more.txt", b"and more\n")
    theirs.create_commit(repo, [more], commit_message="More notes", revision="refs/pr/1")
    with pytest.raises(HfHubHTTPError):  # his own PR's branch only
        sneak = CommitOperationAdd("sneak.txt", b"!")
        theirs.create_commit(repo, [sneak], commit_message="Sneak", revision="main")
    api.upload_file(path_or_fileobj=b"other\n", path_in_repo="other.txt", repo_id=repo)
    details = api.get_discussion_details(repo, 1)
    assert details.is_pull_request and details.target_branch == "refs/heads/main"
    assert [e.summary for e in details.events if e.type == "commit"] == ["Add notes", "More notes"]
    assert "+from bob" in details.diff and "notes.txt" in details.diff
    assert details.conflicting_files == []
    with pytest.raises(HfHubHTTPError) as err:  # merging takes write access
        theirs.merge_pull_request(repo, 1)
    assert err.value.response.status_code == 403
    api.merge_pull_request(repo, 1, comment="Thanks")
    files = set(api.list_repo_files(repo))
    assert {"notes.txt", "more.txt", "other.txt", "README.md"} <= files
    head = api.list_repo_commits(repo)[0]
    assert head.title.startswith("Merge pull request #1")
    merged = api.get_discussion_details(repo, 1)
    assert merged.status == "merged" and merged.merge_commit_oid == head.commit_id
    with pytest.raises(HfHubHTTPError):  # merged once
        api.merge_pull_request(repo, 1)


def test_a_conflicting_pull_request_is_refused_and_names_the_files(hub, alice, repo):
    api = hub.api(alice)
    first = CommitOperationAdd("README.md", b"# Talk\n\nfirst\n")
    second = CommitOperationAdd("README.md", b"# Talk\n\nsecond\n")
    one = api.create_commit(repo, [first], commit_message="One", create_pr=True)
    two = api.create_commit(repo, [second], commit_message="Two", create_pr=True)
    api.merge_pull_request(repo, one.pr_num)
    details = api.get_discussion_details(repo, two.pr_num)
    assert details.conflicting_files == ["README.md"]
    with pytest.raises(HfHubHTTPError) as err:
        api.merge_pull_request(repo, two.pr_num)
    assert err.value.response.status_code == 409 and "README.md" in str(err.value)
    readme = api.hf_hub_download(repo, "README.md")
    assert Path(readme).read_text().endswith("first\n")
    assert api.get_discussion_details(repo, two.pr_num).status == "open"
    draft = api.create_pull_request(repo, "An empty draft")
    assert draft.status == "draft" and draft.git_reference == f"refs/pr/{draft.num}"
