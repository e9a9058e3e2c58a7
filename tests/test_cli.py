"""The command line as a user meets it: versions, help, errors, users and tokens."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hubtool import __version__

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate")


def hubtool(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hubtool", *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_version_from_console_script_and_module():
    script = Path(sys.executable).with_name("hubtool")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hubtool, version {__version__}"
    assert hubtool("--version", check=True).stdout == out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hub", "--help"],
        ["hub", "serve", "--help"],
        ["hub", "token", "create", "--help"],
        ["finetune", "--help"],
        ["evaluate", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_imports_no_heavy_library(argv):
    code = (
        f"import sys\nsys.argv = ['hubtool', *{argv!r}]\nfrom hubtool.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("[]"), out


def test_hub_server_imports_no_heavy_library():
    code = (
        "import sys\nimport hubtool.hub.server, hubtool.hub.catalog\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_user_token_and_org_commands(tmp_path):
    data = str(tmp_path / "hub")
    hubtool(
        "hub", "user", "add", "dana", "--email", "d@example.org", "--data-dir", data, check=True
    )
    hubtool("hub", "org", "add", "team", "--member", "dana", "--data-dir", data, check=True)
    proc = hubtool("hub", "token", "create", "dana", "--write", "--data-dir", data, check=True)
    token = proc.stdout.strip()
    assert token.startswith("hf_") and len(token) == 37
    assert token not in proc.stderr
    db = (tmp_path / "hub" / "hub.sqlite3").read_bytes()
    assert token.encode() not in db  # stored hashed only
    from hubtool.hub.auth import identify
    from hubtool.hub.service import HubService

    who = identify(HubService(tmp_path / "hub").db, token)
    assert who is not None and who.can_write and who.namespaces == ("dana", "team")


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["hub", "user", "add", "bad name"], 2, "is not valid"),
        (["hub", "token", "create", "ghost"], 5, "No user named 'ghost'"),
        (["hub", "org", "add", "crew", "--member", "ghost"], 5, "No user named 'ghost'"),
        (["hub", "import-catalog", "/nonexistent.jsonl"], 2, "does not exist"),
        (["hub", "serve", "--port", "70000"], 2, "70000"),
        (["no-such-command"], 2, "No such command"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_code(tmp_path, args, code, needle):
    proc = (
        hubtool(*args, "--data-dir", str(tmp_path / "hub"))
        if args[0] == "hub" and (args[1] != "import-catalog")
        else hubtool(*args)
    )
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_duplicate_user_is_an_error(tmp_path):
    data = str(tmp_path / "hub")
    hubtool("hub", "user", "add", "erin", "--data-dir", data, check=True)
    proc = hubtool("hub", "user", "add", "erin", "--data-dir", data)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: User 'erin' already exists")


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = hubtool("hub", "serve", "--port", str(port), "--data-dir", str(tmp_path / "h"))
    assert proc.returncode == 6
    assert "Cannot use the local Hub" in proc.stderr and "--port" in proc.stderr


def test_debug_switch_shows_traceback(tmp_path):
    proc = hubtool(
        "--debug", "hub", "token", "create", "ghost", "--data-dir", str(tmp_path / "hub")
    )
    assert proc.returncode == 5 and "Traceback" in proc.stderr


def test_wheel_ships_templates(built_wheel):
    names = zipfile.ZipFile(built_wheel).namelist()
    for name in (
        "hubtool/templates/README.md",
        "hubtool/templates/modelcard.md.j2",
        "hubtool/templates/hub_repo.html.j2",
        "hubtool/templates/publish-workflow.yml.j2",
        "hubtool/cards/probes/fr.yaml",
        "hubtool/cli/release.py",
        "hubtool/hub/server.py",
    ):
        assert name in names, name


def test_github_workflows_are_pinned_and_least_privilege():
    import yaml

    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for wf in workflows:
        text = wf.read_text()
        doc = yaml.safe_load(text)
        assert doc["permissions"] == {}, wf
        steps = [s for job in doc["jobs"].values() for s in job["steps"]]
        assert any("make test" in s.get("run", "") for s in steps), wf
        for step in steps:
            if "uses" in step:  # every action pinned to a full commit SHA
                ref = step["uses"].split("@", 1)[1]
                assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step


def test_readme_shows_every_command():
    """Every command and subcommand appears in the README with an example line."""
    import click

    from hubtool.cli import cli

    readme = (ROOT / "README.md").read_text()

    def walk(group: click.Group, prefix: str) -> list[str]:
        names = []
        for name, command in group.commands.items():
            path = f"{prefix} {name}"
            if isinstance(command, click.Group):
                names += walk(command, path)
            else:
                names.append(path)
        return names

    missing = [
        c
        for c in walk(cli, "hubtool")
        if c not in readme and c.replace("hubtool ", "make ") not in readme
    ]
    assert missing == []
