"""Local data folders as users keep them: which files are data, which split each is, and one
clear UsageError (naming the file) for each way a data file can be unloadable."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from hubtool.errors import UsageError
from hubtool.training import datafiles
from hubtool.training.config import FinetuneConfig
from hubtool.training.data import load_raw
from tests import warm
from tests.conftest import client_env


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def rows_csv(n: int, start: int = 0, sep: str = ",") -> str:
    lines = [f"text{sep}label"] + [f"row number {i}{sep}{i % 2}" for i in range(start, start + n)]
    return "\n".join(lines) + "\n"


def rows_jsonl(n: int, start: int = 0) -> str:
    return "".join(
        json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(start, start + n)
    )


def load(root: Path) -> tuple[dict[str, int], dict]:
    ds, source = load_raw(FinetuneConfig(model="x", dataset=str(root)))
    return {split: len(ds[split]) for split in ds}, source


def refused(root: Path, *needles: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        load(root)
    text = f"{info.value.message}\n{info.value.hint or ''}"
    for needle in needles:
        assert needle in text, text
    assert "\n" not in info.value.message.strip(), info.value.message
    return info.value


def project_folder(root: Path) -> Path:
    """train/validation next to a checkpoint, a README, a run dir and the usual clutter."""
    write(root, "train.csv", rows_csv(6))
    write(root, "validation.csv", rows_csv(3, start=6))
    for name in ("config.json", "tokenizer.json", "special_tokens_map.json"):
        write(root, f"checkpoint/{name}", "{}")
    write(root, "checkpoint/vocab.txt", "[PAD]\n[UNK]\n")
    write(root, "checkpoint/model.safetensors", b"\x00fake weights")
    write(root, "README.md", "# my project\n")
    write(root, "runs/x/run.json", "{}")
    write(root, "runs/x/train_log.jsonl", '{"step": 1, "loss": 0.5}\n')
    write(root, "runs/x/metrics.json", "{}")
    write(root, ".git/train.csv", "not,data\n")
    write(root, ".cache/validation.jsonl", "{}\n")
    write(root, "node_modules/pkg/test.json", "{}")
    write(root, "__pycache__/train.txt", "x\n")
    write(root, "venv/pyvenv.cfg", "home = /usr\n")
    write(root, "venv/lib/test_data.txt", "x\n")
    write(root, "pkg.egg-info/requires.txt", "datasets\n")
    return root


# -- layouts --------------------------------------------------------------------------------------
def test_project_folder_is_train_and_validation_only(tmp_path):
    root = project_folder(tmp_path / "project")
    sizes, source = load(root)
    assert sizes == {"train": 6, "validation": 3}
    assert source["id"] is None and source["path"] == str(root.resolve())
    assert source["config"] is None and source["revision"].startswith("sha256:")
    data = datafiles.resolve(root, str(root))
    assert data.splits == {"train": ["train.csv"], "validation": ["validation.csv"]}


def test_fingerprint_covers_exactly_the_files_used(tmp_path):
    root = project_folder(tmp_path / "project")
    first = load(root)[1]["revision"]
    write(root, "checkpoint/vocab.txt", "[PAD]\n[UNK]\nmore\n")
    write(root, "README.md", "# changed\n")
    assert load(root)[1]["revision"] == first
    write(root, "validation.csv", rows_csv(4, start=6))
    assert load(root)[1]["revision"] != first


def test_fingerprint_reads_in_chunks(tmp_path, monkeypatch):
    root = tmp_path / "d"
    write(root, "train.csv", rows_csv(50))
    monkeypatch.setattr(datafiles, "CHUNK", 7)
    small = load(root)[1]["revision"]
    monkeypatch.setattr(datafiles, "CHUNK", 1 << 20)
    assert load(root)[1]["revision"] == small


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"train.jsonl": rows_jsonl(5), "dev.jsonl": rows_jsonl(2)}, {"train": 5, "validation": 2}),
        ({"train.csv": rows_csv(4), "valid.csv": rows_csv(2)}, {"train": 4, "validation": 2}),
        (
            {f"data/train/shard_{i}.csv": rows_csv(3, start=3 * i) for i in range(2)}
            | {"data/validation/shard_0.csv": rows_csv(2)},
            {"train": 6, "validation": 2},
        ),
        (
            {
                "train-00000-of-00002.csv": rows_csv(3),
                "train-00001-of-00002.csv": rows_csv(4, start=3),
                "test-00000-of-00001.csv": rows_csv(2),
            },
            {"train": 7, "test": 2},
        ),
        ({"dataset.csv": rows_csv(5), "README.md": "# data\n"}, {"train": 5}),
        (
            {"train.tsv": rows_csv(4, sep="\t") + "a, b, c\t1\n", "val.tsv": rows_csv(2, sep="\t")},
            {"train": 5, "validation": 2},
        ),
        ({"train.txt": "one line\ntwo line\n", "test.txt": "three\n"}, {"train": 2, "test": 1}),
    ],
    ids=["dev-jsonl", "valid-csv", "split-folders", "sharded", "lone-file", "tsv", "txt"],
)
def test_layouts(tmp_path, files, expected):
    for rel, content in files.items():
        write(tmp_path / "d", rel, content)
    assert load(tmp_path / "d")[0] == expected


def test_data_folder_with_parquet_splits(tmp_path):
    import datasets

    for split, n in (("train", 5), ("test", 2)):
        rows = {"text": [f"r{i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        (tmp_path / "d" / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows).to_parquet(
            str(tmp_path / "d" / "data" / f"{split}.parquet")
        )
    assert load(tmp_path / "d")[0] == {"train": 5, "test": 2}


def test_compressed_and_single_files(tmp_path):
    write(tmp_path / "gz", "train.jsonl.gz", gzip.compress(rows_jsonl(4).encode()))
    write(tmp_path / "gz", "validation.jsonl", rows_jsonl(2))
    assert load(tmp_path / "gz")[0] == {"train": 4, "validation": 2}
    single = write(tmp_path, "data.csv", rows_csv(3))
    sizes, source = load(single)
    assert sizes == {"train": 3} and source["path"] == str(single.resolve())


def test_splits_agree_with_datasets_own_resolution(tmp_path):
    """On folders with nothing to skip, the split files are exactly what datasets finds."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    layouts = [
        ["train.csv", "validation.csv", "test.csv", "notes.md"],
        ["data/train/a.csv", "data/train/b.csv", "data/test/a.csv"],
        ["data/train-00000-of-00001.csv", "data/random-00000-of-00001.csv"],
        ["my_train_1.csv", "my_train_2.csv", "dev-set.csv"],
        ["dataset.csv", "sub/more.csv"],
    ]
    for i, layout in enumerate(layouts):
        root = tmp_path / str(i)
        for rel in layout:
            write(root, rel, rows_csv(1))
        ours = datafiles.split_files(root, datafiles.data_candidates(root))
        theirs = DataFilesDict.from_patterns(get_data_patterns(str(root)), str(root))
        assert ours == {
            str(s): sorted(Path(f).relative_to(root).as_posix() for f in fs if f.endswith(".csv"))
            for s, fs in theirs.items()
        }, layout


# -- refusals -------------------------------------------------------------------------------------
def test_mixed_formats_are_refused(tmp_path):
    write(tmp_path / "a", "train.csv", rows_csv(3))
    write(tmp_path / "a", "validation.jsonl", rows_jsonl(2))
    refused(tmp_path / "a", "train.csv (csv)", "validation.jsonl (json)")
    write(tmp_path / "b", "data/train/one.csv", rows_csv(3))
    write(tmp_path / "b", "data/train/two.parquet", b"PAR1")
    refused(tmp_path / "b", "one.csv (csv)", "two.parquet (parquet)")
    write(tmp_path / "c", "train.csv", rows_csv(3))
    write(tmp_path / "c", "test.tsv", rows_csv(3, sep="\t"))
    refused(tmp_path / "c", "train.csv (csv)", "test.tsv (tsv)")


def test_latin1_file(tmp_path):
    write(tmp_path / "d", "train.csv", rows_csv(3))
    write(tmp_path / "d", "validation.csv", "text,label\ncafé crème,1\n".encode("latin-1"))
    err = refused(tmp_path / "d", "validation.csv", "not UTF-8", "iconv -f latin1 -t utf-8")
    assert "offset 14" in err.message


def test_latin1_json_is_caught_though_datasets_would_load_it(tmp_path, monkeypatch):
    monkeypatch.setattr(datafiles, "CHUNK", 5)  # multi-byte characters across chunk borders
    ok = "".join(
        json.dumps({"text": "é€😀", "label": 1}, ensure_ascii=False) + "\n" for _ in range(9)
    )
    write(tmp_path / "d", "train.jsonl", ok.encode() + '{"text": "naïve"}\n'.encode("latin-1"))
    refused(tmp_path / "d", "train.jsonl", "not UTF-8", f"offset {len(ok.encode()) + 12}")
    write(tmp_path / "e", "train.jsonl", ok)
    assert load(tmp_path / "e")[0] == {"train": 9}


def test_utf16_file(tmp_path):
    write(tmp_path / "d", "train.csv", rows_csv(3).encode("utf-16"))
    refused(tmp_path / "d", "train.csv", "not UTF-8", "UTF-16", "iconv -f utf-16")


def test_binary_garbage(tmp_path):
    write(tmp_path / "d", "train.txt", bytes(range(256)) * 4)
    refused(tmp_path / "d", "train.txt", "not UTF-8", "iconv")


def test_compressed_latin1(tmp_path):
    write(tmp_path / "d", "train.csv.gz", gzip.compress("text,label\nçà,1\n".encode("latin-1")))
    refused(tmp_path / "d", "train.csv.gz", "not UTF-8")


def test_ragged_csv_row(tmp_path):
    write(tmp_path / "d", "train.csv", rows_csv(3))
    write(tmp_path / "d", "validation.csv", "text,label\na,0\nb,1,oops\n")
    refused(tmp_path / "d", "validation.csv", "not valid CSV", "line 3", "saw 3")


def test_columns_differ_between_train_and_validation(tmp_path):
    write(tmp_path / "d", "train.csv", rows_csv(3))
    write(tmp_path / "d", "validation.csv", "text,tag\na,0\n")
    refused(tmp_path / "d", "validation.csv", "train.csv", "text, tag", "text, label")


def test_columns_differ_within_a_split(tmp_path):
    write(tmp_path / "d", "data/train/a.csv", rows_csv(3))
    write(tmp_path / "d", "data/train/b.csv", "sentence,label\na,0\n")
    refused(tmp_path / "d", "data/train/a.csv", "data/train/b.csv", "sentence, label")


def test_column_types_differ_between_files(tmp_path):
    write(tmp_path / "d", "train.jsonl", rows_jsonl(3))
    write(tmp_path / "d", "validation.jsonl", '{"text": "a", "label": "positive"}\n')
    refused(tmp_path / "d", "validation.jsonl", "train.jsonl", "'label'", "int64", "string")


def test_invalid_json_lines(tmp_path):
    write(tmp_path / "d", "train.jsonl", rows_jsonl(3) + '{"text": oops}\n')
    refused(tmp_path / "d", "train.jsonl", "not valid JSON")


def test_empty_file(tmp_path):
    write(tmp_path / "d", "train.jsonl", rows_jsonl(3))
    write(tmp_path / "d", "test.jsonl", b"")
    refused(tmp_path / "d", "test.jsonl", "0 bytes", "test split is empty")


def test_blank_lines_only(tmp_path):
    write(tmp_path / "d", "train.jsonl", rows_jsonl(3))
    write(tmp_path / "d", "test.jsonl", "\n\n")
    refused(tmp_path / "d", "test.jsonl", "no rows")


def test_header_only_csv(tmp_path):
    write(tmp_path / "d", "train.csv", rows_csv(3))
    write(tmp_path / "d", "validation.csv", "text,label\n")
    refused(tmp_path / "d", "validation split is empty", "validation.csv")


def test_fake_parquet(tmp_path):
    write(tmp_path / "d", "train.parquet", rows_csv(3))
    refused(tmp_path / "d", "train.parquet", "not a readable parquet file")


def test_no_data_files(tmp_path):
    root = project_folder(tmp_path / "project")
    (root / "train.csv").unlink()
    (root / "validation.csv").unlink()
    refused(root, "No data files", str(root))
    write(tmp_path, "notes.md", "# hi\n")
    refused(tmp_path / "notes.md", "Unsupported data file", "notes.md")


def test_bad_data_is_exit_2_without_traceback(checkpoint, tmp_path):
    root = project_folder(tmp_path / "project")
    write(root, "validation.csv", "text,label\ncafé,1\n".encode("latin-1"))
    args = ["finetune", "--model", str(checkpoint), "--dataset", str(root)]
    proc = warm.run(
        [sys.executable, "-m", "hubtool", *args, "--output-dir", "out", "--no-progress"],
        cwd=tmp_path,
        env=client_env("http://127.0.0.1:9", tmp_path / "hf_home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Failed to read" not in proc.stderr, proc.stderr
    assert "validation.csv is not UTF-8" in proc.stderr and "iconv" in proc.stderr
    assert not (tmp_path / "out" / "model").exists()


def test_sharded_name_that_is_no_split_name(tmp_path):
    write(tmp_path / "d", "data/train set-00000-of-00001.csv", rows_csv(2))
    refused(tmp_path / "d", "Cannot tell the splits", "train set")
