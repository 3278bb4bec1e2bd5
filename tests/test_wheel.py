"""A wheel installed outside the checkout works without it: ``demo`` and ``evaluate`` run, and nothing is read
from the checkout (the benchmarks live in ``benchmarks/``, outside the package)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from s3r_zoo.data.simulated_sets import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd, env):
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_wheel_installed_elsewhere_runs_demo_and_evaluate(tmp_path):
    import shutil

    src = tmp_path / "src"  # a copy of what the package is built from: an in-tree build/ would leave stale files
    shutil.copytree(ROOT / "s3r_zoo", src / "s3r_zoo", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("setup.cfg", "pyproject.toml", "README.md", "s3r_zoo_cli.py"):
        shutil.copy(ROOT / f, src / f)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp_path / "whl"),
                    str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "whl").glob("s3r_zoo-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=600)
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("benchmarks/", "tests/", "s3r_zoo/bench/"))]
    assert "s3r_zoo/models/releases.json" in names and "s3r_zoo_cli.py" in names  # the console script's module
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1",
           "S3R_ZOO_CACHE": str(tmp_path / "cache")}
    env.pop("S3R_ZOO_WEIGHTS", None)
    where = _run(["-c", "import s3r_zoo; print(s3r_zoo.__file__)"], work, env)
    assert where.strip().startswith(str(tmp_path / "site"))  # the wheel's copy, not the checkout's
    demo = _run(["-m", "s3r_zoo", "demo", "--model", "s3r_resnet18", "--size", "32", "--repeats", "1",
                 "--pretrain-epochs", "0", "--out", "demo"], work, env)
    assert (work / "demo" / "demo.json").is_file() and "untrained" in demo.lower()
    assert "usage: s3r-zoo pretrain" in _run(["-c", "import s3r_zoo_cli; s3r_zoo_cli.main(['pretrain', '--help'])"],
                                             work, env)
    write_dataset(work / "data", "pdac_like", n=20, size=16, seed=0, difficulty=0.0, split=(0.5, 0.2, 0.3))
    out = _run(["-m", "s3r_zoo", "evaluate", "--data", "data", "--no-finetune", "--seeds", "2", "--probe-fractions",
                "1", "--out", "ev"], work, env)
    assert "linear probe" in out and (work / "ev" / "evaluate.json").is_file() and (work / "ev" / "evaluate.png").is_file()
