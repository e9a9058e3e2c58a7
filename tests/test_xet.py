"""Xet in the local Hub (issue 18): the real ``hf_xet`` client uploads and downloads through
the local Hub's CAS with no configuration, sends only what the server lacks, and the CAS
refuses anything it cannot verify in one 4xx."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hubtool.hub import xet
from tests.conftest import client_env

MB = 1 << 20


@pytest.fixture
def traffic(monkeypatch):
    """Bytes of every xorb the CAS receives, and the reconstructions it answers."""
    from hubtool.hub import cas, server

    seen: dict[str, list] = {"xorbs": [], "reconstructions": []}

    def xorbs(c):
        seen["xorbs"].append(c.req.content_length or 0)
        return cas.upload_xorb(c)

    def rebuilt(c):
        seen["reconstructions"].append(c.params["hash"])
        return cas.reconstruct(c)

    spies = {cas.upload_xorb: xorbs, cas.reconstruct: rebuilt}
    table = tuple((m, p, spies.get(h, h)) for m, p, h in server.ROUTE_TABLE)
    monkeypatch.setattr(server, "ROUTE_TABLE", table)
    return seen


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MB):
            digest.update(block)
    return digest.hexdigest()


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for start in range(0, size, 16 * MB):
            fh.write(rng.integers(0, 256, min(16 * MB, size - start), dtype=np.uint8).tobytes())
    return path


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_hf_xet_uploads_and_downloads_200_mb_with_no_configuration(hub, alice, tmp_path, traffic):
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    assert "HF_HUB_DISABLE_XET" not in os.environ
    big = random_file(tmp_path / "big.bin", 200 * MB)
    api = hub.api(alice)
    repo = f"{alice.name}/xet-big"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=str(big), path_in_repo="weights.bin", repo_id=repo)
    assert sum(traffic["xorbs"]) >= 200 * MB  # through Xet, random bytes do not compress
    (entry,) = [f for f in api.list_repo_tree(repo) if f.path == "weights.bin"]
    assert entry.lfs.sha256 == sha256_of(big) and entry.size == 200 * MB  # an LFS pointer
    meta = get_hf_file_metadata(hf_hub_url(repo, "weights.bin"), token=alice.token)
    assert meta.xet_file_data is not None  # resolve offers the Xet route
    got = hf_hub_download(repo, "weights.bin", token=alice.token, cache_dir=tmp_path / "dl")
    assert traffic["reconstructions"] == [meta.xet_file_data.file_hash]
    assert sha256_of(Path(got)) == entry.lfs.sha256
    # plain HTTP (curl, HF_HUB_DISABLE_XET=1) reads the same bytes from the LFS store
    auth = {"Authorization": f"Bearer {alice.token}", "Range": "bytes=1000-1999"}
    status, _, part = get(f"{hub.url}/{repo}/resolve/main/weights.bin", auth)
    assert status == 206 and part == big.read_bytes()[1000:2000]


def test_only_what_the_server_lacks_is_sent(hub, alice, tmp_path, traffic):
    from huggingface_hub import hf_hub_download

    first = random_file(tmp_path / "a.bin", 24 * MB, seed=1)
    api = hub.api(alice)
    repo = f"{alice.name}/xet-dedup"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=str(first), path_in_repo="a.bin", repo_id=repo)
    sent = sum(traffic["xorbs"])
    assert sent >= 24 * MB
    api.upload_file(path_or_fileobj=str(first), path_in_repo="copy.bin", repo_id=repo)
    assert sum(traffic["xorbs"]) == sent  # unchanged content: no xorb sent again
    changed = bytearray(first.read_bytes())
    changed[12 * MB] ^= 0xFF
    (tmp_path / "b.bin").write_bytes(changed)
    api.upload_file(path_or_fileobj=str(tmp_path / "b.bin"), path_in_repo="a.bin", repo_id=repo)
    extra = sum(traffic["xorbs"]) - sent
    assert 0 < extra <= 2 * 128 * 1024 + 64  # the changed chunk (and its neighbour at most)
    got = hf_hub_download(repo, "a.bin", token=alice.token, cache_dir=tmp_path / "dl")
    assert Path(got).read_bytes() == bytes(changed)  # new chunk between old ones


UPLOAD = """
import sys
from huggingface_hub import HfApi
HfApi(token=sys.argv[1]).upload_file(
    path_or_fileobj=sys.argv[2], path_in_repo="weights.bin", repo_id=sys.argv[3])
"""


def test_kill_9_mid_upload_leaves_the_old_version(hub, alice, tmp_path):
    from huggingface_hub import hf_hub_download

    api = hub.api(alice)
    repo = f"{alice.name}/xet-kill"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"old weights", path_in_repo="weights.bin", repo_id=repo)
    big = random_file(tmp_path / "new.bin", 200 * MB, seed=2)
    xorbs = hub.service.data_dir / "xet" / "xorbs"
    before = set(xorbs.glob("*/*")) if xorbs.is_dir() else set()
    env = client_env(hub.url, tmp_path / "hf_home")
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOAD, alice.token, str(big), repo], env=env, cwd=tmp_path
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if xorbs.is_dir() and set(xorbs.glob("*/*")) - before:
            break  # the first xorb is in: the upload is under way
        time.sleep(0.01)
    assert proc.poll() is None, "the upload finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    got = hf_hub_download(repo, "weights.bin", token=alice.token, cache_dir=tmp_path / "dl")
    assert Path(got).read_bytes() == b"old weights"
    landed = {p for p in set(xorbs.glob("*/*")) - before if not p.name.startswith(".")}
    for path in landed:  # what landed under a name is whole and verified (temporaries aside)
        chunks = xet.parse_xorb(path.read_bytes())
        assert xet.hash_string(xet.merkle_root([(c.hash, c.length) for c in chunks])) == path.name
    proc = subprocess.run(
        [sys.executable, "-c", UPLOAD, alice.token, str(big), repo],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = hf_hub_download(repo, "weights.bin", token=alice.token, cache_dir=tmp_path / "dl2")
    assert sha256_of(Path(got)) == sha256_of(big)


# -- the CAS refuses what it cannot verify -------------------------------------------------------
def _record(data: bytes) -> bytes:
    n = len(data).to_bytes(3, "little")
    return bytes([0]) + n + bytes([xet.NONE]) + n + data


def _xorb(*chunks: bytes) -> tuple[str, bytes]:
    leaves = [(xet.chunk_hash(c), len(c)) for c in chunks]
    return xet.hash_string(xet.merkle_root(leaves)), b"".join(_record(c) for c in chunks)


def _shard(files: list[tuple[bytes, list[tuple[bytes, int, int, int]], bytes]]) -> bytes:
    body = xet.SHARD_TAG + struct.pack("<QQ", 2, 0)
    for file_hash, segments, sha in files:
        body += file_hash + struct.pack("<IIQ", xet.HAS_METADATA, len(segments), 0)
        for xorb, start, end, length in segments:
            body += xorb + struct.pack("<IIII", 0, length, start, end)
        body += xet.hash_bytes(sha) + bytes(16)
    return body + xet.BOOKEND + xet.BOOKEND


def _call(method: str, url: str, body: bytes = b"", token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                 headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_the_cas_refuses_what_it_cannot_verify(hub, alice):
    import lz4.frame

    api = hub.api(alice)
    repo = f"{alice.name}/xet-hostile"
    api.create_repo(repo)
    _, info = _call("GET", f"{hub.url}/api/models/{repo}/xet-write-token/main", token=alice.token)
    cas, token = info["casUrl"], info["accessToken"]
    _, read = _call("GET", f"{hub.url}/api/models/{repo}/xet-read-token/main", token=alice.token)
    name, body = _xorb(b"a" * 5000, b"b" * 7000)
    assert _call("POST", f"{cas}/v1/xorbs/default/{name}", body)[0] == 401
    assert _call("POST", f"{cas}/v1/xorbs/default/{name}", body, read["accessToken"])[0] == 403
    other = "0" * 64
    status, err = _call("POST", f"{cas}/v1/xorbs/default/{other}", body, token)
    assert status == 400 and "hash to" in err["error"]
    assert _call("POST", f"{cas}/v1/xorbs/default/{name}", b"\x07garbage", token)[0] == 400
    frame = lz4.frame.compress(bytes(16 * MB))  # 64 KiB that inflate to 16 MiB
    bomb = bytes([0]) + len(frame).to_bytes(3, "little") + bytes([xet.LZ4])
    bomb += (1000).to_bytes(3, "little") + frame
    status, err = _call("POST", f"{cas}/v1/xorbs/default/{name}", bomb, token)
    assert status == 400 and "longer than announced" in err["error"]
    assert _call("POST", f"{cas}/v1/xorbs/default/{name}", body, token) == (
        200,
        {"was_inserted": True},
    )
    leaves = [(xet.chunk_hash(b"a" * 5000), 5000), (xet.chunk_hash(b"b" * 7000), 7000)]
    sha = hashlib.sha256(b"a" * 5000 + b"b" * 7000).hexdigest()
    good = (xet.file_hash(leaves), [(xet.hash_bytes(name), 0, 2, 12000)], sha)
    unknown = (good[0], [(bytes(32), 0, 2, 12000)], sha)
    wrong_size = (good[0], [(xet.hash_bytes(name), 0, 2, 11999)], sha)
    wrong_sha = (good[0], good[1], "1" * 64)
    for bad, words in (
        (unknown, "never uploaded"),
        (wrong_size, "wrong size"),
        (wrong_sha, "do not match"),
        ((bytes(32), good[1], sha), "hash to another file"),
    ):
        status, err = _call("POST", f"{cas}/v1/shards", _shard([bad]), token)
        assert status == 400 and words in err["error"], err
    assert _call("POST", f"{cas}/v1/shards", b"not a shard" * 10, token)[0] == 400
    assert _call("POST", f"{cas}/v1/shards", _shard([good]), token) == (200, {"result": 1})
    file_id = xet.hash_string(good[0])
    rebuilt = f"{cas}/v1/reconstructions/{file_id}"
    status, plan = _call("GET", rebuilt, token=read["accessToken"])
    assert status == 200 and plan["offset_into_first_range"] == 0
    assert plan["terms"] == [
        {"hash": name, "unpacked_length": 12000, "range": {"start": 0, "end": 2}}
    ]
    (fetch,) = plan["fetch_info"][name]
    assert fetch["url_range"] == {"start": 0, "end": len(body) - 1}
    status, _, data = get(fetch["url"], {"Range": f"bytes=0-{len(body) - 1}"})
    assert status == 206 and data == body
    assert get(fetch["url"].replace("sig=", "sig=0"))[0] == 403
    assert _call("GET", f"{cas}/v1/reconstructions/{'1' * 64}", token=token)[0] == 404
    other = f"{alice.name}/xet-other"  # a read token of another repo reads none of this one's
    api.create_repo(other)
    _, elsewhere = _call("GET", f"{hub.url}/api/models/{other}/xet-read-token/main",
                         token=alice.token)  # fmt: skip
    assert _call("GET", rebuilt, token=elsewhere["accessToken"])[0] == 404
    for past in ("bytes=12000-", "bytes=x-1"):
        req = urllib.request.Request(rebuilt, headers={"Authorization": f"Bearer {token}",
                                                       "Range": past})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 416
    # a reader of the repo may not upload; another user may not even ask
    assert _call("GET", f"{hub.url}/api/models/{repo}/xet-write-token/main",
                 token=alice.read_token)[0] == 403  # fmt: skip
    bob = hub.user("bob")
    assert _call("GET", f"{hub.url}/api/models/{repo}/xet-write-token/main",
                 token=bob.token)[0] == 403  # fmt: skip


def test_hash_strings_and_byte_grouping_follow_the_specification():
    raw = bytes(range(32))
    text = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert xet.hash_string(raw) == text and xet.hash_bytes(text) == raw
    with pytest.raises(xet.XetFormatError):
        xet.hash_bytes("XYZ")
    data = bytes(range(11))
    grouped = b"".join(data[k::4] for k in range(4))
    assert xet._regroup(grouped) == data
    assert xet.file_hash([]) == bytes(32) and xet.merkle_root([]) == bytes(32)
