"""A non-editable install finds the shipped preset files (installed as package data) and never writes into the
installed package: `data generate` without --out goes to the user cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        str(REPO),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=build, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip could not build the package here: {done.stderr[-300:]}")
    return target


def run(code, target, cwd, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(target), **(env_extra or {})}
    env.pop("MINI_CAL_DATA", None)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=True
    ).stdout


def test_installed_package_reads_shipped_presets(installed, tmp_path):
    out = run(
        "from mini_cal.lab import presets; print(presets.load_preset('tiny').provenance['file'])", installed, tmp_path
    )
    assert Path(out.strip()) == installed / "mini_cal" / "_presets" / "tiny.npz"
    code = "from mini_cal.lab.cli import main; main(['train', '--preset', 'tiny', '--epochs', '1', '--no-progress'])"
    assert "fused accuracy" in run(code, installed, tmp_path)


def test_generate_never_writes_into_the_installed_package(installed, tmp_path):
    cache = tmp_path / "cache"
    before = sorted((installed / "mini_cal" / "_presets").iterdir())
    run(
        "from mini_cal.lab.cli import main; main(['data', 'generate', 'tiny'])",
        installed,
        tmp_path,
        {"XDG_CACHE_HOME": str(cache)},
    )
    assert (cache / "mini_cal" / "tiny.npz").exists() and (cache / "mini_cal" / "manifest.json").exists()
    assert sorted((installed / "mini_cal" / "_presets").iterdir()) == before
