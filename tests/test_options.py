"""One declaration per option: YAML and the command line go through the same checks."""

import dataclasses

import pytest

from s3r_zoo.cli import build_parser, main
from s3r_zoo.finetune import FinetuneSpec
from s3r_zoo.options import OptionError, build_spec
from s3r_zoo.pretrain import PretrainSpec

TINY = ["--data", "synthetic:pdac_like", "--synthetic-n", "4", "--epochs", "1", "--batch-size", "4", "--crop", "32",
        "--crops-per-cube", "1", "--mask-patch", "8"]


def _yaml(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return str(path)


def test_yaml_1e_minus_4_is_a_float_and_runs(tmp_path, capsys):
    """YAML 1.1 reads `1e-4` as a string; the option is declared float, so it becomes one."""
    cfg = _yaml(tmp_path, "lr: 1e-4\nweight_decay: 0\n")
    spec = build_spec(PretrainSpec, {"lr": "1e-4", "weight_decay": 0})
    assert spec.lr == 1e-4 and isinstance(spec.lr, float) and spec.weight_decay == 0.0
    out = tmp_path / "run"
    assert main(["pretrain", "--config", cfg, *TINY, "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "encoder.safetensors").is_file()


@pytest.mark.parametrize("command,text,key,expected", [
    ("pretrain", "epochs: ten\n", "epochs", "an integer >= 1"),
    ("pretrain", "epochs: 0\n", "epochs", "an integer >= 1"),
    ("pretrain", "batch_size: 0\n", "batch_size", "an integer >= 1"),
    ("pretrain", "ckpt_every: -1\n", "ckpt_every", "an integer >= 0"),
    ("pretrain", "gamma: fast\n", "gamma", "a number > 0 and <= 1"),
    ("pretrain", "amp: fp8\n", "amp", "one of 'auto', 'none', 'bf16', 'fp16'"),
    ("pretrain", "lr: -1\n", "lr", "a number > 0 and <= 1e+06"),
    ("finetune", "label_fraction: 1.5\n", "label_fraction", "a number > 0 and <= 1"),
    ("finetune", "wavelengths: [450, blue]\n", "wavelengths", "a list of numbers (or none)"),
])
def test_bad_yaml_value_is_one_line_and_writes_nothing(tmp_path, capsys, command, text, key, expected):
    out = tmp_path / "run"
    cfg = _yaml(tmp_path, text)
    assert main([command, "--config", cfg, "--data", str(tmp_path / "d"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--config {cfg}: {key}: expected {expected}, found" in err
    assert not out.exists()


def test_bad_command_line_value_gets_the_same_check(tmp_path, capsys):
    assert main(["pretrain", "--epochs", "ten", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "s3r-zoo pretrain: error: options: epochs: expected an integer >= 1, " \
                                              "found 'ten'"
    assert not (tmp_path / "run").exists()


def test_bad_command_line_value_is_named_as_an_option_beside_a_good_config(tmp_path, capsys):
    assert main(["pretrain", "--config", _yaml(tmp_path, "epochs: 3\n"), "--batch-size", "0"]) == 2
    assert "error: options: batch_size: expected an integer >= 1, found '0'" in capsys.readouterr().err


def test_command_line_wins_over_yaml(tmp_path):
    args = build_parser().parse_args(["pretrain", "--config", _yaml(tmp_path, "epochs: 3\nlr: 2e-4\n"),
                                      "--epochs", "5"])
    from s3r_zoo.cli import _spec

    spec = _spec(args)
    assert spec.epochs == 5 and spec.lr == 2e-4


def test_unknown_yaml_key_is_named(tmp_path, capsys):
    assert main(["pretrain", "--config", _yaml(tmp_path, "epoch: 3\n")]) == 2
    assert "unknown keys ['epoch']" in capsys.readouterr().err


@pytest.mark.parametrize("spec_cls,command", [(PretrainSpec, "pretrain"), (FinetuneSpec, "finetune")])
def test_every_option_is_settable_from_the_command_line(spec_cls, command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    dests = {a.dest for a in sub._actions}
    assert {f.name for f in dataclasses.fields(spec_cls)} <= dests


def test_options_that_were_yaml_only_exist_on_the_command_line(tmp_path):
    args = build_parser().parse_args(["pretrain", "--weight-decay", "0.1", "--grad-clip", "0", "--no-mask"])
    from s3r_zoo.cli import _spec

    spec = _spec(args)
    assert spec.weight_decay == 0.1 and spec.grad_clip == 0.0 and spec.mask is False
    args = build_parser().parse_args(["finetune", "--max-degrees", "30", "--wavelengths", "450", "460.5",
                                      "--linear-probe"])
    spec = _spec(args)
    assert spec.max_degrees == 30.0 and spec.wavelengths == [450.0, 460.5] and spec.linear_probe is True


def test_library_callers_get_option_error():
    with pytest.raises(OptionError, match="options: seeds: expected an integer >= 1, found 0"):
        build_spec(FinetuneSpec, {"seeds": 0})
    assert build_spec(FinetuneSpec, {"eval_crop": "none"}).eval_crop is None


def test_help_texts_say_what_the_flags_do(capsys):
    import pytest as _pytest

    from s3r_zoo.cli import main

    with _pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-channels-last turn off (on by default): channels_last memory format" in text
    assert "--patience PATIENCE epochs without improvement of the held-out validation loss" in text
