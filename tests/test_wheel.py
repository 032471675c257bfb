"""The wheel: `pip install .` gives a package that explains offline from any folder.

pyproject.toml lists udig's packages by hand, because the repository's top-level assets/ folder (the default
model, the data split, the demo's CSS) is mapped into the package as udig/assets; a package added under udig/
must be listed there too, and the first test says which.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
TEXT = "a gorgeous, moving film"


def requirement_names(lines) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines}


def asset_files() -> set[str]:
    """Every file the checkout's assets/ folder holds, as its path inside the folder."""
    return {p.relative_to(ROOT / "assets").as_posix() for p in (ROOT / "assets").rglob("*") if p.is_file()}


def test_every_package_and_asset_is_configured():
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "udig").rglob("__init__.py")}
    assert set(SETUPTOOLS["packages"]) == packages | {"udig.assets"}, "pyproject's [tool.setuptools] packages"
    assert SETUPTOOLS["package-dir"] == {"udig.assets": "assets"}
    shipped = {p.relative_to(ROOT / "assets").as_posix() for g in SETUPTOOLS["package-data"]["udig.assets"]
               for p in (ROOT / "assets").glob(g)}  # fmt: skip
    assert shipped == asset_files()


def test_a_space_installs_what_the_library_and_demo_declare():
    """requirements.txt (what a Space installs) names every dependency of the library and of its demo extra."""
    space = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["demo"]
    assert requirement_names(declared) <= requirement_names(line for line in space if line and line[0].isalpha())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the sources pyproject.toml reads (the checkout stays untouched)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    shutil.copy(ROOT / "pyproject.toml", source)
    for folder in ("udig", "assets"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("udig-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_code_the_default_model_and_the_dependencies(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    code = {p.relative_to(ROOT).as_posix() for p in (ROOT / "udig").rglob("*.py")}
    assert code <= names, sorted(code - names)
    assert {f"udig/assets/{name}" for name in asset_files()} <= names
    required = {str(Requirement(r)) for r in metadata.get_all("Requires-Dist") if "extra ==" not in r}
    assert required == {str(Requirement(r)) for r in PYPROJECT["project"]["dependencies"]}
    assert set(metadata.get_all("Provides-Extra")) == {"demo", "ray", "test"}


@pytest.mark.slow
def test_pip_install_explains_offline_from_another_folder(wheel, tmp_path):
    """A fresh venv (no system packages), this torch, then the wheel with its dependencies: from a folder
    without the checkout, the default model explains a sentence offline as the checkout does."""
    from udig import Explainer, load_model

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q"]
    torch_pin = f"torch=={torch.__version__}"
    if subprocess.run([*pip, torch_pin], capture_output=True, timeout=900).returncode != 0:
        pytest.skip(f"{torch_pin} cannot be installed here (the test needs this machine's torch build)")
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=900)
    script = (
        "import json, udig\n"
        "from udig import Explainer, load_model\n"
        f"e = Explainer(*load_model()).explain({TEXT!r}, method='udig')\n"
        "print(json.dumps({'file': udig.__file__, 'label': e.target_label, 'attributions': e.attributions}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    run = subprocess.run([python, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    installed = json.loads(run.stdout.splitlines()[-1])
    assert Path(installed["file"]).is_relative_to(venv)
    here = Explainer(*load_model()).explain(TEXT, method="udig")
    assert installed["label"] == here.target_label == "positive"
    assert installed["attributions"] == pytest.approx(list(here.attributions), abs=1e-4)
