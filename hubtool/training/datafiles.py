"""Local data on disk: which files of a folder are data, which split each belongs to, and
loading them with one clear error per bad file.

Split names follow the Hub's conventions for a dataset repository, taken from the datasets
library itself (``_get_data_files_patterns`` and its patterns: ``train*``, ``validation*`` /
``dev*`` / ``valid*``, ``test*``, ``data/`` folders, split-named folders, sharded names, a lone
file = train). Its resolver is ours: one walk of the folder that skips what is clearly not data
(model and tokenizer folders, hubtool run folders, hidden and special folders, virtual
environments, README.md), matched with fsspec's own glob translation, so a project folder with
a ``.venv`` or ``.git`` is not walked once per pattern. ``datasets`` is imported lazily.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtool.errors import UsageError

# file format (its extension) -> the datasets builder that loads it
FORMATS = {
    "csv": "csv",
    "tsv": "csv",
    "json": "json",
    "jsonl": "json",
    "parquet": "parquet",
    "txt": "text",
}
COMPRESSIONS = (".gz", ".bz2", ".xz")
CHUNK = 1 << 20
MODEL_MARKERS = {
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "model.safetensors.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
}
WITH_CONFIG = {"vocab.txt", "vocab.json", "merges.txt", "spiece.model", "added_tokens.json"}
WITH_CONFIG |= {"sentencepiece.bpe.model", "generation_config.json", "preprocessor_config.json"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".onnx", ".gguf", ".ckpt")
RUN_MARKERS = {"train_log.jsonl", "metrics.json", "model", "checkpoints"}
SKIPPED_DIRS = {"node_modules", "site-packages", "wandb", "mlruns"}
NOT_DATA = {"requirements.txt", "requirements-dev.txt", "constraints.txt", "license.txt"}
NOT_DATA |= {"package.json", "package-lock.json", "tsconfig.json", "run.json"}
NO_ROWS = re.compile(r'Instruction "([^"]+)" corresponds to no data')


@dataclass(frozen=True)
class LocalData:
    """The data files of a local file or folder, by split, all in one format."""

    root: Path  # the folder the files are relative to
    shown: str  # that folder as the user wrote it (for messages)
    splits: dict[str, list[str]]  # split -> posix paths relative to root
    fmt: str  # csv, tsv, json, jsonl, parquet or txt

    def name(self, rel: str) -> str:
        return display(self.shown, rel)

    @property
    def builder(self) -> str:
        return FORMATS[self.fmt]

    @property
    def options(self) -> dict[str, Any]:
        return {"delimiter": "\t"} if self.fmt == "tsv" else {}

    def data_files(self, rels: list[str] | None = None) -> dict[str, list[str]]:
        if rels is not None:
            return {"train": [str(self.root / r) for r in rels]}
        return {s: [str(self.root / r) for r in fs] for s, fs in self.splits.items()}


def display(shown: str, rel: str) -> str:
    """A data file's path as the user would type it: the folder they gave, then its path."""
    return rel if shown in ("", ".") else f"{shown.rstrip('/')}/{rel}"


# -- which files --------------------------------------------------------------------------------
def format_of(name: str) -> str | None:
    """csv, tsv, json, jsonl, parquet or txt for a data file name (compressed or not)."""
    lower = name.lower()
    compressed = lower.endswith(COMPRESSIONS)
    if compressed:
        lower = lower.rpartition(".")[0]
    ext = lower.rpartition(".")[2] if "." in lower else ""
    if ext not in FORMATS or (compressed and ext == "parquet"):
        return None
    return ext


def resolve(path: Path, shown: str) -> LocalData:
    """The data files of a file or folder, by split; a UsageError when there are none."""
    if path.is_file():
        fmt = format_of(path.name)
        if fmt is None:
            raise UsageError(
                f"Unsupported data file {shown}.",
                "Use a .csv, .tsv, .json, .jsonl, .parquet or .txt file (or .gz/.bz2/.xz of one).",
            )
        return LocalData(path.parent, str(Path(shown).parent), {"train": [path.name]}, fmt)
    splits = split_files(path, data_candidates(path))
    if not splits:
        raise UsageError(
            f"No data files in {shown if shown.strip('./') else path.resolve()}.",
            "Expected .csv, .tsv, .json, .jsonl, .parquet or .txt files (train.csv, "
            "validation.csv, data/train/…); model, tokenizer, run and hidden folders are skipped.",
        )
    return LocalData(path, shown, splits, one_format(splits, shown))


def data_candidates(root: Path) -> list[str]:
    """Posix paths (relative to root) of the files that may be data, skipping the rest."""
    from datasets.data_files import FILES_TO_IGNORE

    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        names = set(filenames)
        if here != root and _skipped_dir(here.name, names, set(dirnames)):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
        for name in names - _artefacts(names, set(dirnames)) - set(FILES_TO_IGNORE):
            if not name.startswith((".", "~")) and format_of(name) and name.lower() not in NOT_DATA:
                found.append((here / name).relative_to(root).as_posix())
    return sorted(found)


def _skipped_dir(name: str, files: set[str], dirs: set[str]) -> bool:
    return (
        name in SKIPPED_DIRS
        or name.endswith((".egg-info", ".dist-info"))
        or "pyvenv.cfg" in files
        or is_model_dir(files)
        or is_run_dir(files, dirs)
    )


def is_model_dir(files: set[str]) -> bool:
    """A model or tokenizer folder: weights or tokenizer files, or config.json with either."""
    if files & MODEL_MARKERS or any(f.endswith((".safetensors", ".gguf")) for f in files):
        return True
    weights = any(f.endswith(WEIGHT_SUFFIXES) for f in files)
    return "config.json" in files and (weights or bool(files & WITH_CONFIG))


def is_run_dir(files: set[str], dirs: set[str]) -> bool:
    """A hubtool run directory: run.json with a training log, metrics or model folder."""
    return "run.json" in files and bool((files | dirs) & RUN_MARKERS)


def _artefacts(files: set[str], dirs: set[str]) -> set[str]:
    """Files of the folder given itself that belong to a model or a run, not to the data."""
    model = files & (MODEL_MARKERS | WITH_CONFIG) if is_model_dir(files) else set()
    run = {f for f in files if f in RUN_MARKERS or f.startswith("metrics")}
    return model | (run if is_run_dir(files, dirs) else set())


def split_files(root: Path, candidates: list[str]) -> dict[str, list[str]]:
    """Split name -> files, by the datasets library's own default patterns."""
    from datasets.data_files import _get_data_files_patterns

    def resolver(pattern: str) -> list[str]:
        return match(pattern, candidates)

    try:
        patterns = _get_data_files_patterns(resolver)
    except FileNotFoundError:
        return {}
    except ValueError as exc:  # a sharded name whose split is not a valid split name
        raise UsageError(f"Cannot tell the splits of {root}: {exc}") from None
    splits = {str(s): sorted({f for p in ps for f in resolver(p)}) for s, ps in patterns.items()}
    return {s: fs for s, fs in splits.items() if fs}


def match(pattern: str, candidates: list[str]) -> list[str]:
    """The candidates a datasets pattern selects, with fsspec's glob semantics."""
    from fsspec.utils import glob_translate

    regex = re.compile(glob_translate(pattern))
    return [c for c in candidates if regex.match(c)]


def one_format(splits: dict[str, list[str]], shown: str) -> str:
    """The one format of all the files; mixing formats is a UsageError naming them."""
    first: dict[str, str] = {}
    for rel in (r for rels in splits.values() for r in rels):
        fmt = format_of(rel) or ""
        first.setdefault("json" if fmt == "jsonl" else fmt, rel)
    if len(first) > 1:
        listed = ", ".join(f"{display(shown, rel)} ({fmt})" for fmt, rel in first.items())
        raise UsageError(
            f"The data files mix formats: {listed}.",
            "Use one format for every split and file (csv and tsv count as different), "
            "or move the other files out of the folder.",
        )
    return format_of(next(iter(first.values()))) or ""


# -- checking and fingerprinting ------------------------------------------------------------------
def fingerprint(data: LocalData) -> str:
    """sha256 over exactly the files used (in chunks); checks text files are non-empty UTF-8."""
    digest = hashlib.sha256()
    for split in sorted(data.splits):
        for rel in data.splits[split]:
            digest.update(f"{split}:{rel}:".encode())
            _digest_file(data, split, rel, digest)
    return "sha256:" + digest.hexdigest()[:16]


def _digest_file(data: LocalData, split: str, rel: str, digest: Any) -> None:
    path = data.root / rel
    if path.stat().st_size == 0:
        sole = len(data.splits[split]) == 1
        where = f"The {split} split is empty: " if sole else ""
        raise UsageError(
            f"{where}{data.name(rel)} is an empty file (0 bytes).", "Add rows or remove it."
        )
    plain_text = data.fmt != "parquet" and not rel.lower().endswith(COMPRESSIONS)
    check = Utf8Check(data.name(rel)) if plain_text else None
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
            if check:
                check.feed(chunk)
    if check:
        check.end()
    elif data.fmt != "parquet":
        check_compressed(path, data.name(rel))


def check_compressed(path: Path, shown: str) -> None:
    """The UTF-8 check for a .gz/.bz2/.xz text file, on its decompressed stream."""
    import bz2
    import gzip
    import lzma

    openers: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers[path.suffix.lower()]
    check = Utf8Check(shown)
    try:
        with opener(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                check.feed(chunk)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise UsageError(f"{shown} cannot be decompressed: {exc}.") from None
    check.end()


class Utf8Check:
    """Fed a file's bytes in chunks; a UsageError at the first byte that is not UTF-8 text."""

    def __init__(self, shown: str) -> None:
        self.shown, self.offset, self.lines = shown, 0, 0
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if self.offset == 0 and chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise not_utf8(self.shown, "it looks like UTF-16 (it starts with a byte-order mark)")
        if b"\x00" in chunk:
            at = self.offset + chunk.index(b"\x00")
            raise not_utf8(self.shown, f"it holds NUL bytes (from byte {at}): binary, or UTF-16")
        pending = len(self.decoder.getstate()[0])
        try:
            self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line = self.lines + exc.object[: exc.start].count(b"\n") + 1
            at, bad = self.offset - pending + exc.start, exc.object[exc.start : exc.start + 1]
            why = f"invalid byte 0x{bad.hex()} on line {line}, offset {at}"
            raise not_utf8(self.shown, why) from None
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")

    def end(self) -> None:
        self.feed(b"", final=True)


def not_utf8(shown: str, why: str) -> UsageError:
    source = "utf-16" if "UTF-16" in why else "latin1"
    return UsageError(
        f"{shown} is not UTF-8 text: {why.rstrip('.')}.",
        f"Convert it to UTF-8, e.g. `iconv -f {source} -t utf-8 {shown} > {shown}.utf8` "
        "(use the -f encoding the file is really in), then use the converted file.",
    )


# -- loading --------------------------------------------------------------------------------------
def load(data: LocalData) -> Any:
    """The DatasetDict of the files; any datasets/pyarrow error is a UsageError naming a file."""
    import datasets

    try:
        with quiet():
            return datasets.load_dataset(data.builder, data_files=data.data_files(), **data.options)
    except load_errors() as exc:
        raise explain(data, exc) from None


def load_errors() -> tuple[type[BaseException], ...]:
    import pyarrow
    from datasets.exceptions import DatasetGenerationError

    return (DatasetGenerationError, pyarrow.ArrowException, ValueError, OSError, StopIteration)


@contextmanager
def quiet(bars: bool = True) -> Iterator[None]:
    """datasets logs each failing file before raising: the UsageError says it once instead.
    ``bars=False`` also hides the progress bars (of the loads that only look for a culprit)."""
    import datasets

    level, hide = datasets.logging.get_verbosity(), not bars and datasets.is_progress_bar_enabled()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    if hide:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if hide:
            datasets.enable_progress_bars()


def explain(data: LocalData, exc: BaseException) -> UsageError:
    """The UsageError for a failed load: the empty split, the bad file, or the files that differ."""
    empty = NO_ROWS.search(str(exc))
    if empty and empty.group(1) in data.splits:
        rels = data.splits[empty.group(1)]
        names = ", ".join(data.name(r) for r in rels[:3]) + (", …" if len(rels) > 3 else "")
        return UsageError(
            f"The {empty.group(1)} split is empty: {names} {'has' if len(rels) == 1 else 'have'} "
            "no rows.",
            "Add rows to it, or remove its file.",
        )
    features: dict[str, Any] = {}
    with quiet(bars=False):
        for rel in (r for rels in data.splits.values() for r in rels):
            try:
                features[rel] = load_alone(data, rel)
            except load_errors() as one:
                if not NO_ROWS.search(str(one)):
                    return describe(data.name(rel), data.fmt, one)
    return mismatch(data, features) or UsageError(
        f"Cannot load the data files in {data.shown}: {root_message(exc)}",
        "Check that every file has the same columns and types.",
    )


def load_alone(data: LocalData, rel: str) -> Any:
    """One file's features, loaded in a cache of its own that is removed straight after."""
    import datasets

    with tempfile.TemporaryDirectory(prefix="hubtool-", ignore_cleanup_errors=True) as cache:
        ds = datasets.load_dataset(
            data.builder, data_files=data.data_files([rel]), cache_dir=cache, **data.options
        )
        return ds["train"].features


def describe(shown: str, fmt: str, exc: BaseException) -> UsageError:
    """The UsageError for one file that does not load alone."""
    chain = list(causes(exc))
    kinds = {type(e).__name__ for e in chain}
    text, why = " ".join(str(e) for e in chain), root_message(exc)
    if "UnicodeDecodeError" in kinds:
        return not_utf8(shown, why)
    if "ParserError" in kinds:
        return UsageError(
            f"{shown} is not valid CSV: {why}",
            "Every row needs as many fields as the header; quote fields that hold the delimiter.",
        )
    if fmt == "parquet":
        return UsageError(
            f"{shown} is not a readable parquet file: {why}",
            "Write it with DataFrame.to_parquet or Dataset.to_parquet, or give it its real suffix.",
        )
    if "JSON parse error" in text or "JSONDecodeError" in kinds:
        why = next((f"{e}." for e in chain if str(e).startswith("JSON parse error")), why)
        return UsageError(
            f"{shown} is not valid JSON: {why}",
            "A .jsonl file needs one JSON object per line; a .json file an array of objects.",
        )
    if kinds & {"StopIteration", "SchemaInferenceError", "EmptyDataError"}:
        return UsageError(f"{shown} holds no rows.", "Add rows to it, or remove it.")
    return UsageError(f"Cannot load {shown}: {why}")


def mismatch(data: LocalData, features: dict[str, Any]) -> UsageError | None:
    """The UsageError for two files whose columns or column types differ, if two do."""
    if not features:
        return None
    first, expected = next(iter(features.items()))
    for rel, feats in features.items():
        if list(feats) != list(expected):
            return UsageError(
                f"{data.name(rel)} has columns {', '.join(feats)} but {data.name(first)} has "
                f"{', '.join(expected)}.",
                "Give every data file (every split) the same columns.",
            )
        for column in feats:
            if feats[column] != expected[column]:
                return UsageError(
                    f"Column {column!r} is {_kind(feats[column])} in {data.name(rel)} but "
                    f"{_kind(expected[column])} in {data.name(first)}.",
                    "Give the column one type in every file (all numbers or all strings).",
                )
    return None


def _kind(feature: Any) -> str:
    return str(getattr(feature, "dtype", None) or type(feature).__name__)


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def root_message(exc: BaseException) -> str:
    """The innermost cause's message, on one line."""
    chain = [e for e in causes(exc) if str(e).strip()]
    text = " ".join(str(chain[-1] if chain else exc).split())
    return text[:300].rstrip(".") + "."
