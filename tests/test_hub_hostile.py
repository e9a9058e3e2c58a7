"""Hostile input against the local Hub: every bad request gets a 4xx JSON answer (507 for a
full disk), never a 5xx, a hang or a dropped connection, and nothing already written is lost.

Framing cases use raw sockets (every socket operation has a timeout); API cases use httpx or
the real ``huggingface_hub`` client. Servers with short timeouts run in this process, on port
0, over their own data directory; crash cases run ``hubtool hub serve`` in a subprocess.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

from hubtool.hub.limits import HubLimits
from hubtool.hub.server import BackgroundHub
from tests.conftest import serve_hub

QUICK = HubLimits(
    workers=8,
    header_timeout=1.0,
    body_timeout=1.0,
    keepalive_timeout=2.0,
    max_json_body=64 << 10,
    max_commit_line=256 << 10,
    max_commit_body=1 << 20,
    max_lfs_object=1 << 20,
)
BOMB_CARD = (
    "---\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{n}: &{n} [{', '.join(f'*{p}' for _ in range(9))}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "license: mit\n---\n# Bomb\n"
)


# -- helpers --------------------------------------------------------------------------------
class Quick:
    """An in-process Hub with short timeouts and small limits, a user and a token."""

    def __init__(self, root: Path, limits: HubLimits = QUICK) -> None:
        self.background = BackgroundHub(root, limits=limits).__enter__()
        self.url = self.background.url
        self.service = self.background.service
        self.user = f"q-{uuid.uuid4().hex[:8]}"
        self.service.add_user(self.user)
        self.token = self.service.create_token(self.user, write=True)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def repo(self) -> str:
        repo_id = f"{self.user}/r-{uuid.uuid4().hex[:6]}"
        body = {"name": repo_id.split("/")[1], "organization": self.user}
        r = httpx.post(f"{self.url}/api/repos/create", json=body, headers=self.auth, timeout=10)
        assert r.status_code == 200, r.text
        return repo_id

    def close(self) -> None:
        self.background.__exit__()


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Iterator[Quick]:
    hub = Quick(tmp_path_factory.mktemp("quick") / "hub")
    yield hub
    hub.close()


def _addr(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def raw(url: str, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is on a new connection; (status, headers, body) of the answer."""
    with socket.create_connection(_addr(url), timeout=timeout) as sock:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def request(method: str, target: str, headers: dict[str, str] | None = None, body=b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    """The status, and the Hub's JSON error (validate-yaml's own shape has ``errors``)."""
    assert status == expected, (status, body[:300])
    assert headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert answer.get("error") or answer.get("errors"), answer


def read_response(fp) -> tuple[int, dict[str, str], bytes]:
    """One response from a buffered reader of the socket (so pipelined answers are not lost)."""
    status = int(fp.readline().split()[1])
    headers = {}
    while (line := fp.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, fp.read(int(headers.get("content-length", "0")))


def commit_lines(path: str, content: bytes, summary: str = "s") -> bytes:
    lines = [
        {"key": "header", "value": {"summary": summary, "description": ""}},
        {
            "key": "file",
            "value": {
                "path": path,
                "encoding": "base64",
                "content": base64.b64encode(content).decode(),
            },
        },
    ]
    return "\n".join(json.dumps(x) for x in lines).encode()


def head_of(data_dir: Path, repo_id: str) -> str:
    git_dir = data_dir / "repos" / "models" / f"{repo_id}.git"
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def temporaries(data_dir: Path) -> list[Path]:
    return list((data_dir / "lfs").glob("*/*/.upload-*"))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- 1. framing: raw bytes on the wire --------------------------------------------------------
FRAMING = [
    ("version 9.9", b"GET /api/models HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ("version 2.0", b"GET /api/models HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    ("http 0.9 line", b"GET /api/models\r\n\r\n", 400),
    ("lower-case version", b"GET /api/models http/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad method token", b"G(T /api/models HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no host on 1.1", b"GET /api/models HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET /api/models HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("target not a path", b"GET api/models HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("control char in target", b"GET /api/\x01models HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (
        "header without colon",
        request("GET", "/api/models", {"X-Broken": "v"}).replace(b"X-Broken: v", b"X-Broken v"),
        400,
    ),
    ("space before colon", request("GET", "/api/models").replace(b"Host:", b"Host :"), 400),
    (
        "obsolete line folding",
        request("GET", "/api/models", {"X-A": "1"}).replace(b"X-A: 1", b"X-A: 1\r\n folded"),
        400,
    ),
    ("NUL in a header", request("GET", "/api/models", {"X-A": "a\x00b"}), 400),
    (
        "two content-lengths",
        request("POST", "/api/repos/create", {"Content-Length": "2", "content-length": "3"}, b"{}"),
        400,
    ),
    (
        "content-length list",
        request("POST", "/api/repos/create", {"Content-Length": "2, 3"}, b"{}"),
        400,
    ),
    (
        "length and chunked",
        request(
            "POST",
            "/api/repos/create",
            {"Content-Length": "2", "Transfer-Encoding": "chunked"},
            b"2\r\n{}\r\n0\r\n\r\n",
        ),
        400,
    ),
    ("length not a number", request("POST", "/api/repos/create", {"Content-Length": "abc"}), 400),
    ("negative length", request("POST", "/api/repos/create", {"Content-Length": "-1"}), 400),
    (
        "absurd length digits",
        request("POST", "/api/repos/create", {"Content-Length": "9" * 30}),
        400,
    ),
    (
        "unknown transfer-encoding",
        request("POST", "/api/repos/create", {"Transfer-Encoding": "gzip, chunked"}),
        400,
    ),
    (
        "invalid chunk size",
        request(
            "POST", "/api/repos/create", {"Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n"
        ),
        400,
    ),
    (
        "chunk size overflow",
        request("POST", "/api/repos/create", {"Transfer-Encoding": "chunked"}, b"f" * 40 + b"\r\n"),
        400,
    ),
    (
        "chunk without CRLF",
        request(
            "POST", "/api/repos/create", {"Transfer-Encoding": "chunked"}, b"2\r\n{}XX0\r\n\r\n"
        ),
        400,
    ),
    ("request line too long", b"GET /" + b"a" * (20 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("too many headers", request("GET", "/api/models", {f"X-H{i}": "v" for i in range(150)}), 431),
    ("header block too big", request("GET", "/api/models", {"X-Big": "v" * (70 << 10)}), 431),
    ("OPTIONS", request("OPTIONS", "/api/models"), 405),
    ("TRACE", request("TRACE", "/"), 405),
    ("unknown method", request("BREW", "/api/repos/create"), 405),
    ("CONNECT", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 400),
]


@pytest.mark.parametrize(
    "data,status", [(d, s) for _, d, s in FRAMING], ids=[n for n, _, _ in FRAMING]
)
def test_malformed_framing_gets_a_4xx_json_answer(hub, data, status):
    got, headers, body = raw(hub.url, data)
    assert_json_error(got, headers, body, status)
    if status == 405:
        assert set(headers["allow"].split(", ")) <= {
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "PATCH",
        }


def test_absolute_form_target_is_served(hub):
    status, _, body = raw(
        hub.url, b"GET http://127.0.0.1/api/models?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 200 and isinstance(json.loads(body), list)


def test_pipelined_and_keep_alive_requests_are_all_answered(hub):
    one = request("GET", "/api/models?limit=1")
    with socket.create_connection(_addr(hub.url), timeout=10) as sock:
        sock.sendall(one + one + request("GET", "/api/nothing-here"))
        fp = sock.makefile("rb")
        statuses = [read_response(fp)[0] for _ in range(3)]
    assert statuses == [200, 200, 404]


@pytest.mark.parametrize("shut", [True, False], ids=["client stops writing", "client stalls"])
def test_chunked_body_cut_off_is_answered(quick, shut):
    data = request("POST", "/api/repos/create", {"Transfer-Encoding": "chunked"}, b"10\r\n{}")
    with socket.create_connection(_addr(quick.url), timeout=10) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        status, headers, body = read_response(sock.makefile("rb"))
    assert_json_error(status, headers, body, 400 if shut else 408)
    assert headers["connection"] == "close"


def test_expect_100_continue_is_honoured(hub):
    body = json.dumps({"content": "---\nlicense: mit\n---\n", "repoType": "model"}).encode()
    head = request(
        "POST", "/api/validate-yaml", {"Content-Length": str(len(body)), "Expect": "100-continue"}
    )
    with socket.create_connection(_addr(hub.url), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200 and json.loads(resp.read())["errors"] == []


# -- 2. timeouts, pool and connection bounds ----------------------------------------------------
def test_half_sent_requests_hold_no_threads_and_are_closed(quick):
    """300 sockets that send half a request: threads and memory stay bounded, others are served."""
    before_threads, before_rss = threading.active_count(), rss_kib()
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(_addr(quick.url), timeout=10)
            s.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        started = time.monotonic()
        r = httpx.get(f"{quick.url}/api/models?limit=1", timeout=5)
        assert r.status_code == 200 and time.monotonic() - started < 3
        threads = threading.active_count() - before_threads
        during = rss_kib() - before_rss
        print(f"300 half-open: +{threads} threads, RSS +{during} KiB, other request served")
        assert threads <= QUICK.workers + 1, threads
        deadline = time.monotonic() + 10
        answered = 0
        for s in socks:  # each is answered 408 and closed after header_timeout (1 s)
            s.settimeout(max(deadline - time.monotonic(), 0.1))
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 408"), data[:100]
            answered += 1
        assert answered == 300
    finally:
        for s in socks:
            s.close()
    grown = rss_kib() - before_rss
    print(f"after the timeouts: RSS +{grown} KiB")
    assert grown < 64 << 10, f"RSS grew by {grown} KiB"
    assert threading.active_count() - before_threads <= QUICK.workers + 1


def test_beyond_the_connection_limit_the_oldest_half_sent_make_room(tmp_path):
    small = Quick(tmp_path / "hub", HubLimits(max_connections=20, header_timeout=10.0, workers=4))
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(_addr(small.url), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\n")
            socks.append(s)
        started = time.monotonic()
        r = httpx.get(f"{small.url}/api/models", timeout=10)
        assert r.status_code == 200 and time.monotonic() - started < 3
        evicted = socks[0].makefile("rb")  # the oldest: told to come back, not dropped
        status, headers, body = read_response(evicted)
        assert_json_error(status, headers, body, 503)
        assert headers["retry-after"] == "1"
    finally:
        for s in socks:
            s.close()
        small.close()


def test_content_length_larger_than_the_body_times_out_with_408(quick):
    started = time.monotonic()
    data = request("POST", "/api/validate-yaml", {"Content-Length": "100"}, b'{"content"')
    status, headers, body = raw(quick.url, data, timeout=10)
    assert_json_error(status, headers, body, 408)
    assert time.monotonic() - started < 5


def test_idle_keep_alive_connection_is_closed_after_its_timeout(quick):
    with socket.create_connection(_addr(quick.url), timeout=10) as sock:
        sock.sendall(request("GET", "/api/models?limit=1"))
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        resp.read()
        assert resp.status == 200
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server, after keepalive_timeout (2 s)
        assert 1 < time.monotonic() - started < 6


def test_oversized_json_body_is_413_before_it_is_read(quick):
    repo_id = quick.repo()
    head = request(
        "POST",
        f"/api/models/{repo_id}/preupload/main",
        {"Content-Length": str(100 << 20), "Authorization": f"Bearer {quick.token}"},
    )
    status, headers, body = raw(quick.url, head, timeout=10)  # no body sent at all
    assert_json_error(status, headers, body, 413)
    assert headers["connection"] == "close"


def test_early_refusal_of_a_big_commit_reaches_the_client(hub, alice, repo_id):
    """A 400 on the first line of a 40 MiB commit is read by the client, not lost to a reset."""
    hub.api(alice).create_repo(repo_id)
    files = [commit_lines("../bad", b"x")] + [
        commit_lines(f"f{i}.txt", os.urandom(5 << 20)) for i in range(6)
    ]
    r = httpx.post(
        f"{hub.url}/api/models/{repo_id}/commit/main",
        content=b"\n".join(files),
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=30,
    )
    assert_json_error(r.status_code, dict(r.headers), r.content, 400)
    assert "Invalid path" in r.json()["error"]
    started = time.monotonic()  # answered at the bad line, not after 40 MiB that never come
    head = request(
        "POST",
        f"/api/models/{repo_id}/commit/main",
        {"Content-Length": str(40 << 20), "Authorization": f"Bearer {alice.token}"},
        files[0] + b"\n",
    )
    status, headers, body = raw(hub.url, head)
    assert_json_error(status, headers, body, 400)
    assert headers["connection"] == "close" and time.monotonic() - started < 3


def test_oversized_commit_line_and_commit_are_413(quick):
    repo_id = quick.repo()
    url = f"{quick.url}/api/models/{repo_id}/commit/main"
    line = commit_lines("a.txt", b"x" * (300 << 10))
    r = httpx.post(url, content=line, headers=quick.auth, timeout=10)
    assert r.status_code == 413 and "line" in r.json()["error"]
    many = b"\n".join(
        [commit_lines("a.txt", b"x")] + [b'{"key":"deletedFile","value":{"path":"x"}}'] * 30_000
    )
    r = httpx.post(url, content=many, headers=quick.auth, timeout=10)
    assert r.status_code == 413
    assert quick.service.db.get_repo("model", repo_id).sha == head_of(
        quick.service.data_dir, repo_id
    )


# -- 3. malformed input through the API ----------------------------------------------------------
def _api_cases(repo: str) -> list[tuple[str, str, dict, bytes, int]]:
    deep = nested(100_000)
    return [
        (
            "nested commit line",
            "POST",
            f"/api/models/{repo}/commit/main",
            f'{{"key":"header","value":{{"summary":"s","x":{deep}}}}}'.encode(),
            400,
        ),
        (
            "nested preupload",
            "POST",
            f"/api/models/{repo}/preupload/main",
            f'{{"files":{deep}}}'.encode(),
            400,
        ),
        ("nested lfs batch", "POST", f"/{repo}.git/info/lfs/objects/batch", deep.encode(), 400),
        ("nested create", "POST", "/api/repos/create", deep.encode(), 400),
        ("nested validate-yaml", "POST", "/api/validate-yaml", deep.encode(), 400),
        (
            "commit content not a string",
            "POST",
            f"/api/models/{repo}/commit/main",
            b'{"key":"header","value":{"summary":"s"}}\n{"key":"file","value":{"path":"a","content":5}}',
            400,
        ),
        (
            "commit key not a string",
            "POST",
            f"/api/models/{repo}/commit/main",
            b'{"key":["header"],"value":{}}',
            400,
        ),
        ("commit line a list", "POST", f"/api/models/{repo}/commit/main", b"[1, 2]", 400),
        (
            "commit summary with NUL",
            "POST",
            f"/api/models/{repo}/commit/main",
            commit_lines("a.txt", b"x", "a\x00b"),
            400,
        ),
        (
            "preupload sample not a string",
            "POST",
            f"/api/models/{repo}/preupload/main",
            b'{"files":[{"path":"a","size":1,"sample":5}]}',
            400,
        ),
        (
            "preupload size a bool",
            "POST",
            f"/api/models/{repo}/preupload/main",
            b'{"files":[{"path":"a","size":true}]}',
            400,
        ),
        ("repo type a list", "POST", "/api/repos/create", b'{"name":"x","type":["model"]}', 400),
        (
            "organization a list",
            "POST",
            "/api/repos/create",
            b'{"name":"x","organization":["a"]}',
            400,
        ),
        (
            "paths-info paths a number",
            "POST",
            f"/api/models/{repo}/paths-info/main",
            b'{"paths": 5}',
            400,
        ),
        (
            "tag message with NUL",
            "POST",
            f"/api/models/{repo}/tag/main",
            b'{"tag":"v1","message":"a\\u0000b"}',
            400,
        ),
        (
            "1000 filters",
            "GET",
            "/api/models?" + "&".join(f"filter=t{i}" for i in range(1000)),
            b"",
            400,
        ),
        (
            "2000 query fields",
            "GET",
            "/api/models?" + "&".join(f"x{i}=1" for i in range(2000)),
            b"",
            400,
        ),
        (
            "huge search cursor",
            "GET",
            "/api/models?cursor=" + base64.urlsafe_b64encode(b"9" * 30).decode(),
            b"",
            400,
        ),
        ("huge tree cursor", "GET", f"/api/models/{repo}/tree/main?cursor={'9' * 30}", b"", 400),
        ("negative commits cursor", "GET", f"/api/models/{repo}/commits/main?cursor=-5", b"", 400),
        (
            "huge parameter count",
            "GET",
            "/api/models?num_parameters=min:99999999999999999999999",
            b"",
            400,
        ),
        ("NUL in tree path", "GET", f"/api/models/{repo}/tree/main/a%00b", b"", 404),
        ("NUL in resolve path", "GET", f"/{repo}/resolve/main/a%00b", b"", 404),
        ("NUL in revision", "GET", f"/api/models/{repo}/revision/ma%00in", b"", 404),
    ]


API_CASE_NAMES = [c[0] for c in _api_cases("x/y")]


@pytest.mark.parametrize("index", range(len(API_CASE_NAMES)), ids=API_CASE_NAMES)
def test_malformed_api_input_is_a_4xx(hub, alice, repo_id, index):
    hub.api(alice).create_repo(repo_id, exist_ok=True)
    before = hub.api(alice).model_info(repo_id).sha
    _, method, path, body, status = _api_cases(repo_id)[index]
    r = httpx.request(
        method,
        hub.url + path,
        content=body,
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert_json_error(r.status_code, dict(r.headers), r.content, status)
    assert hub.api(alice).model_info(repo_id).sha == before


@pytest.mark.parametrize("body", [b"garbage", b"0032want " + b"f" * 40 + b"\n0000", b"\xff" * 5000])
def test_git_upload_pack_garbage_is_a_4xx(hub, alice, repo_id, body):
    hub.api(alice).create_repo(repo_id)
    r = httpx.post(
        f"{hub.url}/{repo_id}/git-upload-pack",
        content=body,
        headers={"Content-Type": "application/x-git-upload-pack-request"},
        timeout=30,
    )
    assert 400 <= r.status_code < 500 or r.status_code == 200, (r.status_code, r.text[:300])


BAD_REFS = [
    "x.lock",
    "HEAD",
    "a..b",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[b",
    "a\\b",
    "feat/",
    "feat.",
    ".hidden",
    "a/.b",
    "a//b",
    "@{x",
    "@",
    "-x",
    "refs/heads/x",
    "x.lock/y",
]


@pytest.mark.parametrize("name", BAD_REFS)
def test_bad_branch_and_tag_names_are_refused(hub, alice, repo_id, name):
    api = hub.api(alice)
    api.create_repo(repo_id, exist_ok=True)
    with pytest.raises(BadRequestError):
        api.create_branch(repo_id, branch=name)
    with pytest.raises(BadRequestError):
        api.create_tag(repo_id, tag=name)
    refs = api.list_repo_refs(repo_id)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


@pytest.mark.parametrize(
    "name", ["x.lock", "HEAD", "a..b", "a/.b", "feat/", "@{x", "ok/name-1.0", "v1.0.0", "a@b"]
)
def test_ref_name_rules_agree_with_git(name):
    from hubtool.hub.gitstore import ref_name_problem

    ok = (
        subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True, timeout=30
        ).returncode
        == 0
    )
    assert (ref_name_problem(name) is None) == (ok and name != "HEAD")


@pytest.mark.parametrize(
    "name", ["name.git", "NAME.GIT", "a--b", "a..b", "x" * 97, "-x", "x-", ".x", "a b", "a\nb"]
)
def test_bad_repo_names_are_refused(hub, alice, name):
    r = httpx.post(
        f"{hub.url}/api/repos/create",
        json={"name": name, "organization": alice.name},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert r.status_code == 400, r.text
    assert "not valid" in r.json()["error"]
    assert not (hub.service.data_dir / "repos" / "models" / alice.name / f"{name}.git").exists()


def test_host_header_never_reaches_returned_urls(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=os.urandom(2000), path_in_repo="w.bin", repo_id=repo_id)
    evil = {"Host": "evil.example", "Authorization": f"Bearer {alice.token}"}
    port = urlsplit(hub.url).port
    ours = (f"http://127.0.0.1:{port}", f"http://localhost:{port}")
    r = httpx.get(f"{hub.url}/{repo_id}/resolve/main/w.bin", headers=evil, follow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(ours)
    oid = hashlib.sha256(b"new").hexdigest()
    batch = httpx.post(
        f"{hub.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": 3}]},
        headers=evil,
    ).json()
    actions = batch["objects"][0]["actions"]
    assert actions["upload"]["href"].startswith(ours) and actions["verify"]["href"].startswith(ours)
    created = httpx.post(
        f"{hub.url}/api/repos/create",
        json={"name": repo_id.split("/")[1], "organization": alice.name},
        headers=evil,
    )
    assert created.status_code == 409 and created.json()["url"].startswith(ours)
    page = httpx.get(f"{hub.url}/api/models?limit=1", headers=evil)
    assert "evil.example" not in page.headers.get("Link", "")


def test_lfs_batch_refuses_objects_over_the_maximum(quick):
    repo_id = quick.repo()
    objects = [{"oid": "a" * 64, "size": 10**20}, {"oid": "b" * 64, "size": 100}]
    r = httpx.post(
        f"{quick.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": objects},
        headers=quick.auth,
    )
    assert r.status_code == 200
    huge, small = r.json()["objects"]
    assert huge["error"]["code"] == 422 and "larger than" in huge["error"]["message"]
    assert "actions" not in huge and "upload" in small["actions"]


def test_lfs_batch_over_the_maximum_is_a_client_error(hub, alice, repo_id, monkeypatch):
    """The real client turns the per-object error into an error, not a retry loop."""
    api = hub.api(alice)
    api.create_repo(repo_id)
    monkeypatch.setattr(hub.service, "limits", HubLimits(max_lfs_object=100))
    with pytest.raises((ValueError, HfHubHTTPError)) as exc:
        api.upload_file(path_or_fileobj=os.urandom(1000), path_in_repo="w.bin", repo_id=repo_id)
    assert "larger than" in str(exc.value)
    assert api.list_repo_files(repo_id) == [".gitattributes"]


def test_an_unexpected_error_is_a_500_answer_not_a_dropped_socket(quick, monkeypatch):
    from hubtool.hub import server

    def broken(c):
        raise RuntimeError("a bug")

    patched = tuple(
        (m, p, broken if p.pattern == "^/api/agent-harnesses$" else h)
        for m, p, h in server.ROUTE_TABLE
    )
    monkeypatch.setattr(server, "ROUTE_TABLE", patched)
    status, headers, body = raw(quick.url, request("GET", "/api/agent-harnesses"))
    assert_json_error(status, headers, body, 500)
    assert headers["connection"] == "close"
    assert httpx.get(f"{quick.url}/api/models?limit=1").status_code == 200


# -- 4. the YAML bomb ------------------------------------------------------------------------------
def test_yaml_bomb_commit_is_refused_fast_and_others_are_served(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    before = api.model_info(repo_id).sha
    served = []
    stop = threading.Event()

    def others() -> None:
        while not stop.is_set():
            served.append(httpx.get(f"{hub.url}/api/models?limit=1", timeout=5).status_code)

    thread = threading.Thread(target=others)
    thread.start()
    try:
        started = time.monotonic()
        r = httpx.post(
            f"{hub.url}/api/models/{repo_id}/commit/main",
            content=commit_lines("README.md", BOMB_CARD.encode()),
            headers={"Authorization": f"Bearer {alice.token}"},
            timeout=10,
        )
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=10)
    print(f"bomb commit answered {r.status_code} in {elapsed * 1000:.0f} ms")
    assert (
        r.status_code == 400 and "README.md" in r.json()["error"] and "alias" in r.json()["error"]
    )
    assert elapsed < 2, elapsed
    assert served and set(served) == {200}
    assert api.model_info(repo_id).sha == before
    with pytest.raises(ValueError, match=r"README\.md"):  # the client asks validate-yaml first
        api.upload_file(
            path_or_fileobj=BOMB_CARD.encode(), path_in_repo="README.md", repo_id=repo_id
        )


def test_plain_invalid_yaml_card_is_accepted_without_metadata(hub, alice, repo_id):
    api = hub.api(alice)
    api.create_repo(repo_id)
    r = httpx.post(
        f"{hub.url}/api/models/{repo_id}/commit/main",
        content=commit_lines("README.md", b"---\nlicense: [mit\n---\n# x\n"),
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert r.status_code == 200, r.text
    info = api.model_info(repo_id)
    assert info.card_data is None and "README.md" in [s.rfilename for s in info.siblings]


def _commit_behind_the_servers_back(data_dir: Path, repo_id: str, files: dict[str, bytes]) -> str:
    """A commit made with git plumbing only: what a bypassed check or an old server left."""
    from hubtool.hub.gitstore import GitRepo

    repo = GitRepo(data_dir / "repos" / "models" / f"{repo_id}.git")
    head = repo.resolve("main")
    assert head is not None
    adds = {p: ("100644", repo.write_blob(d)) for p, d in files.items()}
    commit = repo.make_commit(head, adds, set(), "behind", "", "x", "2024-01-01T00:00:00.000Z")
    repo.update_ref("refs/heads/main", commit, head)
    return commit


def test_start_up_survives_cards_and_repos_that_break_metadata(tmp_path, monkeypatch, caplog):
    from hubtool.hub import metadata, service

    first = Quick(tmp_path / "hub")
    bomb, boom, fine = first.repo(), first.repo(), first.repo()
    first.close()
    data = tmp_path / "hub"
    heads = {
        bomb: _commit_behind_the_servers_back(data, bomb, {"README.md": BOMB_CARD.encode()}),
        boom: _commit_behind_the_servers_back(data, boom, {"README.md": b"---\nboom: 1\n---\n"}),
        fine: _commit_behind_the_servers_back(
            data, fine, {"README.md": b"---\nlicense: mit\n---\n"}
        ),
    }
    real = metadata.model_metadata

    def exploding(paths, readme, *args, **kwargs):
        if readme and "boom" in readme:
            raise KeyError("a parser bug")
        return real(paths, readme, *args, **kwargs)

    monkeypatch.setattr(service.metadata, "model_metadata", exploding)
    caplog.set_level(logging.WARNING, logger="hubtool.hub")
    started = time.monotonic()
    second = Quick(data)  # start-up re-indexes all three from git
    try:
        assert time.monotonic() - started < 10
        for repo_id, head in heads.items():
            info = httpx.get(
                f"{second.url}/api/models/{repo_id}",
                headers={"Authorization": f"Bearer {first.token}"},
            )
            assert info.status_code == 200 and info.json()["sha"] == head
            readme = httpx.get(f"{second.url}/{repo_id}/resolve/main/README.md")
            assert readme.status_code == 200
        fine_info = httpx.get(f"{second.url}/api/models/{fine}").json()
        assert "license:mit" in fine_info["tags"]
        assert "cardData" not in httpx.get(f"{second.url}/api/models/{bomb}").json()
        assert httpx.get(f"{second.url}/api/models/{boom}").json()["tags"] == ["region:us"]
        logged = caplog.text  # both are said, with the repo named
        assert f"card data of {bomb}" in logged and "expands to more than" in logged
        assert f"metadata of model {boom}" in logged and "a parser bug" in logged
    finally:
        second.close()


# -- 5. crashes, temporaries and a full disk ------------------------------------------------------
def test_kill_9_during_an_lfs_upload_leaves_no_temporaries(tmp_path):
    from hubtool.hub.service import HubService

    data = tmp_path / "hub"
    svc = HubService(data)
    svc.add_user("kim")
    token = svc.create_token("kim", write=True)
    auth = {"Authorization": f"Bearer {token}"}
    proc = serve_hub(data, tmp_path / "url")
    try:
        url = (tmp_path / "url").read_text().strip()
        r = httpx.post(
            f"{url}/api/repos/create", json={"name": "up", "organization": "kim"}, headers=auth
        )
        assert r.status_code == 200
        payload = os.urandom(8 << 20)
        oid = hashlib.sha256(payload).hexdigest()
        batch = httpx.post(
            f"{url}/kim/up.git/info/lfs/objects/batch",
            json={"operation": "upload", "objects": [{"oid": oid, "size": len(payload)}]},
            headers=auth,
        ).json()
        href = urlsplit(batch["objects"][0]["actions"]["upload"]["href"])
        with socket.create_connection((href.hostname, href.port), timeout=10) as sock:
            target = f"{href.path}?{href.query}"
            sock.sendall(
                request("PUT", target, {"Content-Length": str(len(payload))}, payload[: 3 << 20])
            )
            deadline = time.monotonic() + 10
            while (
                not any(p.stat().st_size > 0 for p in temporaries(data))
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert temporaries(data), "the upload never started"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert temporaries(data)  # what kill -9 left behind
    from hubtool.hub import storage

    assert storage.usage(data).temporary_count == len(temporaries(data))
    proc = serve_hub(data, tmp_path / "url2")  # start-up reclaims them
    try:
        assert temporaries(data) == []
        url = (tmp_path / "url2").read_text().strip()
        assert httpx.get(f"{url}/api/models/kim/up", headers=auth).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_stalled_lfs_upload_is_answered_and_cleaned_up(quick):
    repo_id = quick.repo()
    payload = os.urandom(200_000)
    oid = hashlib.sha256(payload).hexdigest()
    batch = httpx.post(
        f"{quick.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": len(payload)}]},
        headers=quick.auth,
    ).json()
    href = urlsplit(batch["objects"][0]["actions"]["upload"]["href"])
    data = request(
        "PUT", f"{href.path}?{href.query}", {"Content-Length": str(len(payload))}, payload[:50_000]
    )
    status, headers, body = raw(quick.url, data, timeout=10)  # then nothing: body_timeout is 1 s
    assert_json_error(status, headers, body, 408)
    assert temporaries(quick.service.data_dir) == []
    assert not quick.service.lfs.has(oid)


def test_gc_reports_and_reclaims_temporaries_but_keeps_those_in_use(tmp_path):
    from click.testing import CliRunner

    from hubtool.cli import cli
    from hubtool.hub import storage

    data = tmp_path / "hub"
    store = data / "lfs" / "ab" / "cd"
    store.mkdir(parents=True)
    (store / ".upload-dead").write_bytes(b"x" * 5000)
    live = store / ".upload-live"
    live.write_bytes(b"y" * 100)
    (store / ("ab" + "0" * 62)).write_bytes(b"z" * 300)
    fd = os.open(live, os.O_RDWR)
    try:
        storage.lock_upload(fd)
        dry = CliRunner().invoke(cli, ["hub", "gc", "--dry-run", "--json", "--data-dir", str(data)])
        assert dry.exit_code == 0, dry.output
        report = json.loads(dry.stdout)
        assert (
            report["temporary_count"] == 2
            and report["lfs"] == 300
            and report["reclaimed"]["bytes"] == 5000
        )
        assert (store / ".upload-dead").exists()
        result = CliRunner().invoke(cli, ["hub", "gc", "--data-dir", str(data)])
        assert result.exit_code == 0, result.output
        assert "temporaries" in result.stdout and "Reclaimed" in result.stderr
        assert not (store / ".upload-dead").exists() and live.exists()
    finally:
        os.close(fd)
    assert storage.reclaim(data).count == 1 and not live.exists()


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root and a kernel that allows it; else the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        timeout=30,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last block (unbuffered writes: nothing left to flush on close)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_disk_is_507_and_nothing_is_half_written(small_disk):
    hub = Quick(small_disk / "hub", HubLimits())
    try:
        repo_id = hub.repo()
        data = hub.service.data_dir
        commit = f"{hub.url}/api/models/{repo_id}/commit/main"
        ok = httpx.post(commit, content=commit_lines("a.txt", b"first"), headers=hub.auth)
        assert ok.status_code == 200
        before = head_of(data, repo_id)
        filler = _fill(small_disk)
        big = os.urandom(600_000)
        r = httpx.post(commit, content=commit_lines("b.bin.txt", big), headers=hub.auth, timeout=30)
        assert_json_error(r.status_code, r.headers, r.content, 507)
        assert "disk is full" in r.json()["error"]
        payload = os.urandom(700_000)
        oid = hashlib.sha256(payload).hexdigest()
        batch = httpx.post(
            f"{hub.url}/{repo_id}.git/info/lfs/objects/batch",
            json={"operation": "upload", "objects": [{"oid": oid, "size": len(payload)}]},
            headers=hub.auth,
        ).json()
        put = httpx.put(
            batch["objects"][0]["actions"]["upload"]["href"], content=payload, timeout=30
        )
        assert put.status_code == 507
        assert head_of(data, repo_id) == before
        assert list(data.rglob("tmp_obj_*")) == [] and temporaries(data) == []
        assert not hub.service.lfs.has(oid)
        filler.unlink()
        again = httpx.post(
            commit, content=commit_lines("b.bin.txt", big), headers=hub.auth, timeout=30
        )
        assert again.status_code == 200, again.text
        assert head_of(data, repo_id) == again.json()["commitOid"] != before
        files = httpx.get(f"{hub.url}/api/models/{repo_id}/tree/main", headers=hub.auth).json()
        assert {f["path"] for f in files} == {".gitattributes", "a.txt", "b.bin.txt"}
    finally:
        hub.close()


def test_full_disk_at_each_git_step_is_a_disk_full_error(small_disk):
    """git does not always name ENOSPC (\"couldn't write main.lock\"): still a 507, not a 500."""
    from hubtool.hub.gitstore import GitRepo
    from hubtool.hub.protocol import disk_full

    repo = GitRepo.init(small_disk / "r.git", {"a": b"a"}, "init", "x", "2024-01-01T00:00:00.000Z")
    head = repo.resolve("main")
    assert head is not None
    oid = repo.write_blob(b"b")
    ready = repo.make_commit(
        head, {"b": ("100644", oid)}, set(), "t", "", "x", "2024-01-01T00:00:00.000Z"
    )
    filler = _fill(small_disk)
    steps = [
        lambda: repo.write_blob(os.urandom(100_000)),
        lambda: repo.make_commit(
            head, {"c": ("100644", oid)}, set(), "t", "", "x", "2024-01-01T00:00:00.000Z"
        ),
        lambda: repo.update_ref("refs/heads/main", ready, head),
    ]
    for step in steps:
        with pytest.raises(OSError) as exc:
            step()
        assert disk_full(exc.value)
    assert repo.resolve("main") == head and repo.resolve("missing") is None  # reads still work
    assert list((small_disk / "r.git").rglob("tmp_*")) == []
    filler.unlink()
    repo.update_ref("refs/heads/main", ready, head)
    assert repo.resolve("main") == ready


def test_simulated_full_disk_is_507_with_the_real_client(hub, alice, repo_id, monkeypatch):
    """Where no tmpfs can be mounted: ENOSPC raised by the blob writer, in this process."""
    from hubtool.hub.gitstore import GitRepo

    api = hub.api(alice)
    api.create_repo(repo_id)
    before = api.model_info(repo_id).sha

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(GitRepo, "write_blob", full)
    started = time.monotonic()
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="full")
    assert exc.value.response.status_code == 507
    assert time.monotonic() - started < 5  # 507 is not retried
    monkeypatch.undo()
    assert api.model_info(repo_id).sha == before
    api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="room again")
    assert "a.txt" in api.list_repo_files(repo_id)
