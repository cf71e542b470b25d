"""What `pip install .` gives a user: a wheel that carries its models and claims no generic package name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import ROOT, rtgenre

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them

WHEEL_SOURCES = ("pyproject.toml", "README.md", "rtgenre", "training", "models")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel built from a copy of the sources.

    The wheel goes in with ``--no-deps``; its dependencies are made visible from the test venv by a
    ``.pth`` line (offline and quick), which adds a directory to the path but runs none of its hooks, so
    the checkout's editable install does not leak in.
    """
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-build-isolation", "--no-deps", str(src), "-w", str(tmp / "dist")],
                   check=True, cwd=tmp, timeout=300)  # fmt: skip
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    wheel = next((tmp / "dist").glob("rtgenre-*.whl"))
    subprocess.run([*pip, "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)  # fmt: skip
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(purelib, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(venv: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``command`` from the venv's bin/, run outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / command), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=180)  # fmt: skip


def test_the_installed_package_classifies_with_its_own_models(installed, music, tmp_path):
    r = run(installed, "rtgenre", "classify", "--json", str(music), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(rtgenre("classify", "--json", str(music)).stdout)
    where = run(installed, "python", "-c", "import rtgenre.model as m; print(m.DEFAULT_MODEL)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed), "the default model must come from the wheel"
    listed = run(installed, "rtgenre", "models", cwd=tmp_path).stdout
    assert all(name in listed for name in ("crnn2d-gtzan", "musicnn-gtzan"))
    assert "oneOf" in json.loads(run(installed, "rtgenre", "schema", cwd=tmp_path).stdout)  # package data too


def test_the_training_package_is_installed_under_its_own_name(installed, tmp_path):
    probe = "import importlib.util as u; print(u.find_spec('training') is None, bool(u.find_spec('rtgenre_train')))"
    assert run(installed, "python", "-c", probe, cwd=tmp_path).stdout.split() == ["True", "True"]
    r = run(installed, "rtgenre-train", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "transfer" in r.stdout, r.stderr
