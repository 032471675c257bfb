"""Deploy the demo to a Hugging Face Space, uploading exactly the files it runs.

    python -m udig.space deploy OWNER/NAME [--private] [--zerogpu] [--dry-run]

The Space (SDK ``gradio``) is created if it does not exist, then one commit through the Hub's upload API
(``HfApi.create_commit``, which stores large files such as the default model's weights in the Hub's large-file
storage) makes its files equal to :func:`upload_set`: the app, the library, its assets, the requirements and the
README, whose front matter configures the Space; files the Space held beyond those are deleted in the same
commit. Tests, docs, benchmarks and tools stay home. ``--dry-run`` lists the files and sizes, offline and
without a token. The token is the usual Hugging Face login (``hf auth login`` or ``HF_TOKEN``); it is handed to
``HfApi`` and never printed. ``--zerogpu`` uploads ``requirements-zerogpu.txt`` as ``requirements.txt``, leaves
the CPU-only ``pre-requirements.txt`` out and sets the front matter's ``python_version`` to one ZeroGPU runs.
The walk-through is ``docs/spaces.md``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What the Space runs: app.py imports udig/, which reads assets/; pre-requirements.txt installs the CPU torch
# before requirements.txt; README.md's front matter is the Space's configuration; .gitattributes keeps the
# weights in large-file storage for anyone who later pushes to the Space with git.
TOP_FILES = ("app.py", "README.md", "requirements.txt", "pre-requirements.txt", ".gitattributes")
FOLDERS = ("udig", "assets")
ZEROGPU_REQUIREMENTS = "requirements-zerogpu.txt"
ZEROGPU_PYTHON = "3.12.12"  # one of the two Pythons ZeroGPU runs (3.12.12, 3.10.13)
SPACE_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# Relative images in the README (the Space's card shows them): ![alt](path) and <img src="path">
CARD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]*\ssrc=\"([^\"]+)\"")

Source = Path | bytes  # a file on disk, or content made for the Space


def upload_set(root: Path = ROOT, *, zerogpu: bool = False) -> dict[str, Source]:
    """Path in the Space -> its content, in upload order: every file the Space runs and nothing else.

    The named top-level files must exist; ``udig/`` and ``assets/`` are taken whole except caches
    (``__pycache__``, ``*.pyc``) and hidden files; images the README shows by a relative path come along.
    """
    files: dict[str, Source] = {}
    for name in TOP_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: a Space needs {name} (run from a udig checkout)")
        files[name] = path
    for folder in FOLDERS:
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"{root / folder} is missing: the Space runs it (run from a udig checkout)")
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and not _skipped(relative):
                files[relative.as_posix()] = path
    for image in _card_images(root):
        files.setdefault(image.relative_to(root).as_posix(), image)
    if zerogpu:
        files = _zerogpu_variant(files, root)
    return files


def _skipped(relative: Path) -> bool:
    """Caches and hidden files: made by Python or editors, never run by the Space."""
    return relative.suffix == ".pyc" or any(part == "__pycache__" or part.startswith(".") for part in relative.parts)


def _card_images(root: Path) -> list[Path]:
    """Images README.md shows by a path inside the checkout (addresses with a scheme are left to the web)."""
    text = (root / "README.md").read_text(encoding="utf-8")
    images = []
    for match in CARD_IMAGE.finditer(text):
        target = (match.group(1) or match.group(2)).split("#")[0]
        if ":" in target or not target:
            continue
        path = (root / target).resolve()
        if path.is_file() and path.is_relative_to(root.resolve()):
            images.append(path)
    return images


def _zerogpu_variant(files: dict[str, Source], root: Path) -> dict[str, Source]:
    """The ZeroGPU Space: its own requirements (a torch ZeroGPU supports, CUDA build), no CPU-only torch first,
    and a Python ZeroGPU runs in the front matter."""
    requirements = root / ZEROGPU_REQUIREMENTS
    if not requirements.is_file():
        raise FileNotFoundError(f"{requirements} is missing: --zerogpu uploads it as requirements.txt")
    readme = (root / "README.md").read_text(encoding="utf-8")
    front_matter = re.match(r"---\n.*?\n---\n", readme, re.DOTALL)
    version = re.compile(r"^python_version:.*$", re.MULTILINE)
    if not front_matter or not version.search(front_matter.group(0)):
        raise ValueError("README.md needs a front matter block with a python_version line for --zerogpu")
    head = version.sub(f'python_version: "{ZEROGPU_PYTHON}"', front_matter.group(0), count=1)
    variant = {name: source for name, source in files.items() if name != "pre-requirements.txt"}
    variant["requirements.txt"] = requirements
    variant["README.md"] = (head + readme[front_matter.end() :]).encode("utf-8")
    return variant


def size_of(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def listing(files: Mapping[str, Source]) -> str:
    """The dry run's table: each file's size in bytes, then the count and the total."""
    sizes = {name: size_of(source) for name, source in files.items()}
    width = len(f"{max(sizes.values(), default=0):,}")
    lines = [f"{size:>{width},}  {name}" for name, size in sizes.items()]
    total = sum(sizes.values())
    lines.append(f"{len(sizes)} files, {total:,} bytes ({total / 2**20:.1f} MiB)")
    return "\n".join(lines)


class DeployError(RuntimeError):
    """A deploy that cannot start: no token, offline mode, or a Space id that is not OWNER/NAME."""


def check_space_id(space_id: str) -> None:
    if not SPACE_ID.fullmatch(space_id):
        raise DeployError(f"Space id {space_id!r} is not OWNER/NAME (e.g. your-name/udig)")


def hub_token() -> str:
    """The usual Hugging Face login (``HF_TOKEN``, else the token ``hf auth login`` stored); never printed."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise DeployError("HF_HUB_OFFLINE is set: deploying needs the Hub; unset it for this command")
    token = get_token()
    if not token:
        raise DeployError(
            "No Hugging Face token: run `hf auth login` (or set HF_TOKEN) with a token that may write to the Space"
        )
    return token


def deploy(space_id: str, *, private: bool = False, zerogpu: bool = False, root: Path = ROOT, api: Any = None) -> str:
    """Create the Space if needed and make its files :func:`upload_set` in one commit; returns its address.

    ``api`` is an ``HfApi`` (tests hand a stand-in); by default one is made with :func:`hub_token`.
    """
    check_space_id(space_id)
    files = upload_set(root, zerogpu=zerogpu)
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    if api is None:
        api = HfApi(token=hub_token())
    # private=None leaves a new Space's visibility to the account's default (public unless its policy says otherwise)
    url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private or None, exist_ok=True)
    stale = [name for name in api.list_repo_files(space_id, repo_type="space") if name not in files]
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=source if isinstance(source, bytes) else str(source))
        for name, source in files.items()
    ] + [CommitOperationDelete(path_in_repo=name) for name in stale]
    api.create_commit(
        space_id,
        operations,
        repo_type="space",
        commit_message=f"Deploy udig ({len(files)} files{', ZeroGPU' if zerogpu else ''})",
        commit_description="Uploaded by `python -m udig.space deploy`: the app, the library, its assets, "
        "the requirements and the README." + (f" Removed: {', '.join(stale)}." if stale else ""),
    )
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m udig.space", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("deploy", help="create or update a Hugging Face Space running the demo")
    command.add_argument("space_id", metavar="OWNER/NAME", help="the Space to create or update")
    command.add_argument(
        "--private", action="store_true", help="create the Space private (an existing one keeps its visibility)"
    )
    command.add_argument("--zerogpu", action="store_true", help=f"the ZeroGPU variant ({ZEROGPU_REQUIREMENTS})")
    command.add_argument("--dry-run", action="store_true", help="list the files and sizes; no token, no network")
    args = parser.parse_args(argv)
    from huggingface_hub.errors import HfHubHTTPError

    try:
        check_space_id(args.space_id)
        if args.dry_run:
            table = listing(upload_set(zerogpu=args.zerogpu))
            print(f"Would upload to the Space {args.space_id}:\n{table}")
            return 0
        print(f"Deployed: {deploy(args.space_id, private=args.private, zerogpu=args.zerogpu)}")
    except (DeployError, FileNotFoundError, ValueError, HfHubHTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
