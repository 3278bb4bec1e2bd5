import json
import subprocess
import sys

import pytest

from s3r_zoo.cli import main


def test_demo_runs_and_writes_json(tmp_path, capsys):
    assert main(["demo", "--model", "s3r_resnet18", "--size", "64", "--repeats", "2", "--out", str(tmp_path),
                 "--pretrain-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "resampled by wavelength to 40 bands, 450-750 nm" in out and "UNTRAINED demo" in out
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["in_chans"] == 40 and result["output_shape"] == [2, 512]
    assert result["wavelengths_nm"][0] == 450.0 and result["wavelengths_nm"][-1] == 750.0
    assert len(result["forward_all_s"]) == 2 and result["released_weights"] is False
    assert result["main_job"]["pretrain"]["epochs"] == 1 and (tmp_path / "pretrain" / "encoder.safetensors").is_file()
    assert "timm.create_model(pretrained=True)" in out and "S3R-CR (this run)" in out and "scratch" in out
    assert set(result["main_job"]["finetune"]) == {"S3R-CR (this run)", "scratch"}


def test_demo_uses_released_weights_when_present(tmp_path, monkeypatch, capsys):
    from conftest import make_checkpoint

    make_checkpoint(tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors")
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(tmp_path / "w"))
    assert main(["demo", "--model", "s3r_resnet18", "--size", "32", "--repeats", "1", "--out", str(tmp_path),
                 "--pretrain-epochs", "0"]) == 0
    assert "released checkpoint" in capsys.readouterr().out


def test_bad_argument_is_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--bands", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "s3r-zoo demo: error: --bands: expected >= 1, found 0"


def test_python_dash_m_matches_console_script():
    res = subprocess.run([sys.executable, "-m", "s3r_zoo", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in res.stdout and "usage: s3r-zoo" in res.stdout


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2


_HELP_PROBE = """
import sys, s3r_zoo_cli
for argv in {argvs!r}:
    try:
        s3r_zoo_cli.main(argv + ["--help"])
    except SystemExit as e:
        assert e.code == 0, (argv, e.code)
heavy = sorted(m for m in ("torch", "timm", "scipy", "matplotlib") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_help_of_every_command_imports_neither_torch_nor_timm():
    """`s3r-zoo --help` answers at once (~0.5 s against ~5 s when torch and timm were imported up front): the
    console script's module (s3r_zoo_cli) defers the timm registration, and option declarations are torch-free."""
    from s3r_zoo.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    data = next(a for a in sub.choices["data"]._actions if a.dest == "data_command")
    argvs = [[]] + [[c] for c in sub.choices if c != "data"] + [["data", c] for c in data.choices]
    assert len(argvs) > 12
    res = subprocess.run([sys.executable, "-c", _HELP_PROBE.format(argvs=argvs)], capture_output=True, text=True,
                         check=True)
    assert "HEAVY ['scipy']" in res.stdout or "HEAVY []" in res.stdout, res.stdout[-500:]


def test_the_console_script_registers_the_models_before_a_command_runs(tmp_path):
    """The deferred registration still happens: a command that builds a model by its timm name works."""
    res = subprocess.run([sys.executable, "-c", "import sys, s3r_zoo_cli; sys.exit(s3r_zoo_cli.main(sys.argv[1:]))",
                          "demo", "--model", "s3r_resnet18", "--size", "32", "--repeats", "1", "--out", str(tmp_path),
                          "--pretrain-epochs", "0"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-800:]
    assert json.loads((tmp_path / "demo.json").read_text())["in_chans"] == 40


def test_import_s3r_zoo_registers_the_models_with_timm():
    res = subprocess.run([sys.executable, "-c", "import s3r_zoo, timm; print(timm.list_models('s3r_*'))"],
                         capture_output=True, text=True, check=True)
    assert "['s3r_resnet18', 's3r_resnet50']" in res.stdout
