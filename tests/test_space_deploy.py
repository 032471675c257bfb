"""``python -m udig.space deploy``: what goes to a Space, the dry run, and the calls to the Hub (a stand-in ``HfApi``
records them; nothing here reaches the network)."""

from __future__ import annotations

import re
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants

from udig import space
from udig.models import WEIGHTS_FILE

SECRET = "hf_TestTokenThatMustNeverBePrinted0123"


def write(root: Path, name: str, text: str = "x") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """A small checkout: what a Space runs, and the usual things around it that it does not."""
    readme = (
        '---\ntitle: t\nsdk: gradio\npython_version: "3.11"\n---\n\n# t\n\n'
        '![a chart](docs/chart.png) ![remote](https://example.org/x.png) <img src="docs/logo.png" alt="">\n'
        "![missing](docs/missing.png) python_version: stays in the body\n"
    )
    write(tmp_path, "README.md", readme)
    for name in ("app.py", "requirements.txt", "pre-requirements.txt", ".gitattributes", "requirements-zerogpu.txt"):
        write(tmp_path, name)
    for name in ("udig/__init__.py", "udig/app/handlers.py", "assets/model/w.safetensors", "assets/style.css"):
        write(tmp_path, name)
    for name in ("udig/__pycache__/m.cpython-311.pyc", "udig/app/stale.pyc", "udig/.DS_Store", "assets/.cache/x"):
        write(tmp_path, name)
    for name in ("docs/chart.png", "docs/logo.png", "docs/guide.md", "tests/test_x.py", "benchmarks/b.py"):
        write(tmp_path, name)
    for name in ("tools/t.py", ".ci/run", ".venv/lib/site.py", "requirements-dev.txt", "build/lib/udig/x.py"):
        write(tmp_path, name)
    return tmp_path


RUNS = [
    "app.py",
    "README.md",
    "requirements.txt",
    "pre-requirements.txt",
    ".gitattributes",
    "udig/__init__.py",
    "udig/app/handlers.py",
    "assets/model/w.safetensors",
    "assets/style.css",
    "docs/chart.png",  # the README shows these two
    "docs/logo.png",
]


def test_upload_set_is_what_the_space_runs(checkout):
    files = space.upload_set(checkout)
    assert list(files) == RUNS
    assert all(files[name] == checkout / name for name in RUNS)


def test_upload_set_names_a_missing_file(checkout):
    (checkout / "pre-requirements.txt").unlink()
    with pytest.raises(FileNotFoundError, match="pre-requirements.txt"):
        space.upload_set(checkout)


def test_zerogpu_variant_swaps_requirements_and_python(checkout):
    write(checkout, "requirements-zerogpu.txt", "torch==2.11.0\n")
    files = space.upload_set(checkout, zerogpu=True)
    assert "pre-requirements.txt" not in files
    assert files["requirements.txt"] == checkout / "requirements-zerogpu.txt"
    readme = files["README.md"].decode()
    assert 'python_version: "3.12.12"\n' in readme and '"3.11"' not in readme
    assert readme.endswith("![missing](docs/missing.png) python_version: stays in the body\n")
    assert set(files) == set(RUNS) - {"pre-requirements.txt"}


def test_the_real_checkout_sends_the_model_and_no_tests():
    files = space.upload_set()
    root = space.ROOT
    assert files["app.py"] == root / "app.py"
    assert f"assets/minilm-rotten-tomatoes/{WEIGHTS_FILE}" in files
    assert "assets/style.css" in files and "udig/app/service.py" in files
    library = {p.relative_to(root).as_posix() for p in (root / "udig").rglob("*.py") if "__pycache__" not in p.parts}
    assert library <= set(files)
    for name in files:
        assert not name.startswith(("tests/", "benchmarks/", "tools/", ".ci/", ".venv/", "build/")), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert not name.startswith("docs/") or name.endswith(".png"), name  # only images the README shows


def test_dry_run_lists_files_sizes_and_total_offline(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any use of the Hub would fail
    assert space.main(["deploy", "someone/udig", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Would upload to the Space someone/udig:"
    rows = [re.fullmatch(r"\s*([\d,]+)  (\S+)", line) for line in out[1:-1]]
    assert all(rows), out
    sizes = {row.group(2): int(row.group(1).replace(",", "")) for row in rows}
    weights = f"assets/minilm-rotten-tomatoes/{WEIGHTS_FILE}"
    assert sizes["app.py"] == (space.ROOT / "app.py").stat().st_size
    assert sizes[weights] == (space.ROOT / weights).stat().st_size > 10 * 2**20
    total = sum(sizes.values())
    assert out[-1] == f"{len(sizes)} files, {total:,} bytes ({total / 2**20:.1f} MiB)"


class RecordingHub:
    """Stands in for ``huggingface_hub.HfApi``: records each call; the Space already holds two files."""

    calls: list[tuple[str, tuple, dict]] = []
    token: str | None = None

    def __init__(self, token=None):
        RecordingHub.token = token

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/spaces/{args[0]}"

    def list_repo_files(self, *args, **kwargs):
        self.calls.append(("list_repo_files", args, kwargs))
        return ["README.md", "tests/test_old.py", ".gitattributes"]

    def create_commit(self, *args, **kwargs):
        self.calls.append(("create_commit", args, kwargs))


@pytest.fixture()
def hub(monkeypatch, tmp_path):
    """A logged-in user (the token file ``hf auth login`` writes) and a recording Hub."""
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHub)
    RecordingHub.calls = []
    return RecordingHub


def test_deploy_creates_the_space_then_commits_the_upload_set(hub, checkout):
    url = space.deploy("someone/udig", private=True, root=checkout)
    assert url == "https://huggingface.co/spaces/someone/udig"
    assert hub.token == SECRET
    assert [name for name, _, _ in hub.calls] == ["create_repo", "list_repo_files", "create_commit"]
    _, args, kwargs = hub.calls[0]
    assert args == ("someone/udig",)
    assert kwargs == {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True}
    _, (space_id, operations), kwargs = hub.calls[2]
    assert space_id == "someone/udig" and kwargs["repo_type"] == "space"
    added = [op for op in operations if isinstance(op, CommitOperationAdd)]
    assert [op.path_in_repo for op in added] == RUNS
    assert all(op.path_or_fileobj == str(checkout / op.path_in_repo) for op in added)
    deleted = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
    assert deleted == ["tests/test_old.py"]  # what the Space held and does not run


def test_deploy_uploads_the_zerogpu_readme_as_content(hub, checkout):
    space.deploy("someone/udig", zerogpu=True, root=checkout)
    assert hub.calls[0][2]["private"] is None  # not asked for: the account's default visibility
    operations = hub.calls[2][1][1]
    readme = next(op for op in operations if op.path_in_repo == "README.md")
    assert b'python_version: "3.12.12"' in readme.path_or_fileobj
    requirements = next(op for op in operations if op.path_in_repo == "requirements.txt")
    assert requirements.path_or_fileobj == str(checkout / "requirements-zerogpu.txt")


def test_the_token_is_never_printed(hub, capsys):
    assert space.main(["deploy", "someone/udig", "--private"]) == 0
    captured = capsys.readouterr()
    assert "Deployed: https://huggingface.co/spaces/someone/udig" in captured.out
    commit = hub.calls[2][2]
    for text in (captured.out, captured.err, commit["commit_message"], commit["commit_description"]):
        assert SECRET not in text


def test_missing_token_says_how_to_log_in(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", None)
    assert space.main(["deploy", "someone/udig"]) == 1
    assert "No Hugging Face token: run `hf auth login` (or set HF_TOKEN)" in capsys.readouterr().err


def test_offline_mode_and_bad_ids_are_refused_before_any_call(hub, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert space.main(["deploy", "someone/udig"]) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert space.main(["deploy", "udig", "--dry-run"]) == 1
    assert "'udig' is not OWNER/NAME" in capsys.readouterr().err
    assert hub.calls == []
