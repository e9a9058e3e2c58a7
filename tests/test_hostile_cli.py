"""Hostile input to the command line: arguments, config files, checkpoints, run directories,
templates and faults. Each case asserts the exit code, a one-paragraph message without a
traceback, no hang (every command runs under a timeout) and that nothing already written was
lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests import tiny, warm
from tests.test_finetune import base_args, read_log, run

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def clear_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    """Exit ``code``, ``needle`` in one paragraph on stderr, no traceback."""
    assert proc.returncode == code, (code, needle, proc.stderr[-2000:])
    assert needle in proc.stderr, (needle, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "unexpectedly" not in proc.stderr
    error = proc.stderr[proc.stderr.index("Error: ") :]
    assert "\n\n" not in error.strip(), error


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# -- arguments and config values ----------------------------------------------------------------
@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--seed", "-5"], "seed must be between 0 and 4,294,967,295"),
        (["--epochs", "inf"], "epochs must be a finite number"),
        (["--epochs", "nan"], "epochs must be a finite number"),
        (["--eval-every", "²"], "eval_every must be 'epoch' or a positive number"),
        (["--save-every", "-3"], "save_every must be 'epoch' or a positive number"),
        (["--max-steps", str(10**30)], "max_steps must be between 1 and 100,000,000"),
        (["--weight-decay", "1e308"], "weight_decay must be between 0 and 10"),
        (["--lr", "0"], "lr must be between 0 and 1"),
        (["--batch-size", "0"], "batch_size must be between 1 and 65,536"),
        (["--max-grad-norm", "nan"], "max_grad_norm must be a finite number"),
        (["--warmup-ratio", "1"], "warmup_ratio must be in [0, 1)"),
        (["--mlm-probability", "1"], "mlm_probability must be in (0, 1)"),
        (["--validation-share", "0"], "validation_share must be in (0, 1)"),
        (["--keep-checkpoints", "0"], "keep_checkpoints must be between 1"),
        (["--max-length", "4"], "max_length must be between 8 and 65536"),
    ],
)
def test_out_of_range_arguments(checkpoint, datasets_dir, tmp_path, extra, needle):
    proc = run(base_args(checkpoint, datasets_dir / "cls", "r", *extra), tmp_path, check=False)
    clear_error(proc, 2, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "body,needle",
    [
        ("batch_size: true", "batch_size must be a number, not True"),
        ('group_by_length: "definitely not"', "group_by_length must be true or false"),
        ("text_column: [a, b]", "text_column must be text, not list"),
        ("lr: fast", "lr must be a number, not 'fast'"),
        ("epochs: .inf", "epochs must be a finite number"),
        ("max_steps: 2.5", "max_steps must be a whole number"),
        ("whole_word_mask: {x: 1}", "whole_word_mask must be true or false"),
        ("lrr: 0.1", "Did you mean 'lr'?"),
        ("finetune: [1, 2]", "must be a mapping"),
        ("- just\n- a list", "must hold a mapping"),
        ("batch_size: [unclosed", "is not valid YAML"),
        ("push: {repo_id: a/b, private: 'yes please'}", "push.private must be true or false"),
        ("push: {repo_id: a/b, enabled: 'no'}", "push.enabled must be true or false"),
        ("card: {intended_uses: [1, 2]}", "Card setting 'intended_uses' must be text"),
        (BOMB, "expands to more than 100,000 values"),
        ("x: &x [*x]", "recursive alias"),
        ("x: " + "[" * 3000 + "]" * 3000, "nested deeper than"),
    ],
)
def test_bad_config_files(checkpoint, datasets_dir, tmp_path, body, needle):
    (tmp_path / "hubtool.yaml").write_text(body)
    args = [*base_args(checkpoint, datasets_dir / "cls", "r")[:8], "--config", "hubtool.yaml"]
    started = time.perf_counter()
    proc = run(args, tmp_path, check=False)
    clear_error(proc, 2, needle)
    assert time.perf_counter() - started < 30  # the bomb is refused, not expanded


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("hubtool.yaml", "lr: 0.1\n".encode("utf-16"), "is UTF-16"),
        ("hubtool.yaml", b"lr: 0.1\nname: caf\xe9\n", "is not UTF-8"),
        ("hubtool.yaml", b"a: " + b"x" * (2 << 20), "larger than 1 MiB"),
        ("hubtool.toml", b"lr = = 1", "is not valid TOML"),
        ("hubtool.yaml", None, "is a directory"),
    ],
)
def test_unreadable_config_files(checkpoint, datasets_dir, tmp_path, name, content, needle):
    path = tmp_path / name
    if content is None:
        path.mkdir()  # a folder where the file should be
    else:
        path.write_bytes(content)
    proc = run(
        base_args(checkpoint, datasets_dir / "cls", "r", "--config", name), tmp_path, check=False
    )
    clear_error(proc, 2, needle)


# -- repo ids -----------------------------------------------------------------------------------
BAD_IDS = ["ünï/côde", "alice/../etc", "alice/model.git", "alice/a--b", "alice-/m", "a/b/c", "a/"]


@pytest.mark.parametrize("repo", BAD_IDS)
def test_bad_repo_ids_everywhere(hub, checkpoint, datasets_dir, tmp_path, repo):
    info = run(["info", repo], tmp_path, check=False, hub_url=hub.url)
    clear_error(info, 2, "is not a Hub repo id")
    push = run(["push", str(tmp_path), "--repo-id", repo], tmp_path, check=False, hub_url=hub.url)
    assert push.returncode == 2 and "Traceback" not in push.stderr, push.stderr
    train = run(
        base_args(checkpoint, datasets_dir / "cls", "r", "--push", "--hub-model-id", repo),
        tmp_path,
        check=False,
        hub_url=hub.url,
    )
    clear_error(train, 2, "is not a Hub repo id")
    resume = run(
        base_args(checkpoint, datasets_dir / "cls", "r", "--resume", f"hub:{repo}"),
        tmp_path,
        check=False,
        hub_url=hub.url,
    )
    clear_error(resume, 2, "is not a Hub repo id")
    assert not (tmp_path / "r").exists()


# -- checkpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage,needle",
    [
        ("truncate", "cannot be read"),
        ("garbage", "cannot be read"),
        ("tokenizer", "Cannot load a tokenizer"),
    ],
)
def test_corrupt_checkpoints(checkpoint, datasets_dir, tmp_path, damage, needle):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage":
        weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    else:
        (broken / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "??"}}')
    proc = run(base_args(broken, datasets_dir / "cls", "r"), tmp_path, check=False)
    clear_error(proc, 2, needle)


def test_output_dir_that_is_a_file(checkpoint, datasets_dir, tmp_path):
    (tmp_path / "taken").write_text("my notes")
    proc = run(base_args(checkpoint, datasets_dir / "cls", "taken/run"), tmp_path, check=False)
    clear_error(proc, 2, "is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "my notes"


# -- data the run cannot learn from -------------------------------------------------------------
def test_one_class_and_ragged_tags(checkpoint, tmp_path):
    tiny.write_jsonl(
        tmp_path / "one" / "train.jsonl", [{"text": t, "label": "x"} for t in tiny.texts(20)]
    )
    proc = run(base_args(checkpoint, tmp_path / "one", "r1"), tmp_path, check=False)
    clear_error(proc, 2, "has a single value (x)")
    rows = tiny.token_rows(20)
    rows[7]["ner_tags"] = [*rows[7]["ner_tags"], "O", "O"]
    tiny.write_jsonl(tmp_path / "ner" / "train.jsonl", rows)
    proc = run(base_args(checkpoint, tmp_path / "ner", "r2"), tmp_path, check=False)
    clear_error(proc, 2, "Row 7 of split 'train' has")


# -- nothing already written is lost ------------------------------------------------------------
def test_overwrite_keeps_the_old_run_until_the_new_one_completes(
    checkpoint, datasets_dir, tmp_path
):
    run(base_args(checkpoint, datasets_dir / "cls", "r", "--max-steps", "4"), tmp_path)
    (tmp_path / "r" / "NOTES.md").write_text("mine")
    before = tree(tmp_path / "r")
    failing = [
        ["--label-column", "nope"],  # fails while reading the data
        ["--lr", "0.9", "--weight-decay", "10", "--max-steps", "200"],  # diverges mid-run
    ]
    for extra in failing:
        proc = run(
            base_args(checkpoint, datasets_dir / "cls", "r", "--overwrite", *extra),
            tmp_path,
            check=False,
        )
        assert proc.returncode in (2, 9) and "Traceback" not in proc.stderr, proc.stderr
        assert tree(tmp_path / "r") == before  # the finished run is untouched
    run(
        base_args(checkpoint, datasets_dir / "cls", "r", "--overwrite", "--max-steps", "6"),
        tmp_path,
    )
    assert json.loads((tmp_path / "r" / "run.json").read_text())["steps"]["done"] == 6
    assert (tmp_path / "r" / "NOTES.md").read_text() == "mine"  # not ours: kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.")]


def test_a_diverging_run_stops_with_a_clear_error(checkpoint, datasets_dir, tmp_path):
    args = [
        "--lr",
        "0.9",
        "--weight-decay",
        "10",
        "--max-steps",
        "200",
        "--save-every",
        "2",
        "--eval-every",
        "2",
    ]
    proc = run(base_args(checkpoint, datasets_dir / "cls", "r", *args), tmp_path, check=False)
    clear_error(proc, 9, "Training diverged at step")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and info["steps"]["done"] < 200
    steps = [e for e in read_log(tmp_path / "r") if "loss" in e]
    assert steps and all(e["loss"] == e["loss"] for e in steps)  # no NaN was logged
    assert list((tmp_path / "r" / "checkpoints").glob("step-*/hubtool_state.json"))


def test_resume_refuses_other_settings_and_records_safe_changes(checkpoint, datasets_dir, tmp_path):
    common = ["--max-steps", "10", "--save-every", "5", "--eval-every", "5", "--seed", "4"]
    run(base_args(checkpoint, datasets_dir / "cls", "r", *common), tmp_path)
    before = tree(tmp_path / "r")
    for extra, needles in (
        (["--lr", "0.01"], ["lr: 0.003 in the checkpoint, 0.01 now"]),
        (["--batch-size", "4", "--seed", "5"], ["batch_size: 16", "seed: 4"]),
        (["--max-steps", "3"], ["below the 10 steps"]),
    ):
        args = base_args(checkpoint, datasets_dir / "cls", "r", *common, *extra, "--resume")
        proc = run(args, tmp_path, check=False)
        for needle in needles:
            clear_error(proc, 2, needle)
        assert tree(tmp_path / "r") == before
    more = base_args(
        checkpoint, datasets_dir / "cls", "r", *common, "--max-steps", "14", "--resume"
    )
    proc = run(more, tmp_path)
    assert "max_steps: 10 -> 14" in proc.stderr
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["resumes"] == [{"step": 10, "changed": {"max_steps": [10, 14]}}]
    assert (
        "Resumed at step 10 with max\\_steps 10 → 14"
        in (tmp_path / "r" / "model" / "README.md").read_text()
    )


# -- faults: a full disk, a read-only folder ---------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 700 KiB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_in_the_run_directory_then_resume(checkpoint, datasets_dir, tmp_path, small_disk):
    out = small_disk / "run"
    args = base_args(
        checkpoint,
        datasets_dir / "corpus.txt",
        str(out),
        "--task",
        "fill-mask",
        "--max-length",
        "32",
        "--max-steps",
        "30",
        "--save-every",
        "5",
        "--eval-every",
        "5",
        "--keep-checkpoints",
        "30",
    )
    proc = run(args, tmp_path, check=False)
    clear_error(proc, 10, "failed: disk full")
    done = [int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*")]
    assert done, "at least one complete checkpoint"
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    run([*args, "--resume"], tmp_path)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert max(e["step"] for e in read_log(out) if "loss" in e) == 30


def test_read_only_output_dir(checkpoint, datasets_dir, tmp_path, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    proc = run(
        base_args(checkpoint, datasets_dir / "cls", str(small_disk / "r")), tmp_path, check=False
    )
    assert proc.returncode == 10 and "Traceback" not in proc.stderr, proc.stderr
    assert "Read-only file system" in proc.stderr or "not writable" in proc.stderr


# -- templates ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def odd_labels_run(checkpoint, tmp_path_factory):
    """A classifier whose labels hold Jinja and Markdown-link syntax."""
    root = tmp_path_factory.mktemp("odd")
    labels = ["{% raw %}evil", "[click](javascript:alert(1))"]
    rows = [{"text": t, "label": labels[i % 2]} for i, t in enumerate(tiny.texts(80))]
    tiny.write_jsonl(root / "data" / "train.jsonl", rows)
    run(base_args(checkpoint, root / "data", "r", "--max-steps", "4"), root)
    return root / "r"


def test_labels_with_template_and_link_syntax_still_give_a_card(odd_labels_run):
    card = (odd_labels_run / "model" / "README.md").read_text()
    assert "evil" in card and "click" in card
    assert "](javascript:" not in card.split("---", 2)[2].replace("\\]", "")


@pytest.mark.parametrize(
    "template,code,needle",
    [
        ('{{ cycler.__init__.__globals__.os.popen("id").read() }}', 2, "may not do"),
        ("{{ model.__class__.__mro__ }}", 2, "may not do"),
        ("{% for x in %}", 2, "line 1"),
        ("{{ nothing_here.at_all }}", 2, "cannot be rendered"),
    ],
)
def test_user_templates_run_sandboxed(odd_labels_run, tmp_path, template, code, needle):
    path = tmp_path / "card.md.j2"
    path.write_text(template)
    proc = run(
        [
            "card",
            str(odd_labels_run),
            "--template",
            str(path),
            "--output",
            str(tmp_path / "out.md"),
        ],
        tmp_path,
        check=False,
    )
    clear_error(proc, code, needle)
    assert "uid=" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out.md").exists()


# -- evaluate offline ---------------------------------------------------------------------------
def test_evaluate_with_a_metric_that_cannot_be_loaded(checkpoint, datasets_dir, tmp_path):
    proc = run(
        [
            "evaluate",
            str(checkpoint),
            "--dataset",
            str(datasets_dir / "cls"),
            "--task",
            "text-classification",
            "--metrics",
            "bleu",
        ],
        tmp_path,
        check=False,
    )
    clear_error(proc, 2, "The evaluate module 'bleu' cannot be loaded")


def test_unexpected_errors_are_one_paragraph(tmp_path):
    code = (
        "import sys\nfrom hubtool import cli\n"
        "def boom(*a, **k):\n    raise RuntimeError('a bug')\n"
        "cli.cli.main = boom\nsys.argv = ['hubtool', 'search']\ncli.main()\n"
    )
    proc = warm.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "failed unexpectedly (RuntimeError: a bug)" in proc.stderr and "--debug" in proc.stderr
