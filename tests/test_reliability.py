"""Nothing lost, nothing silently wrong: output collisions, one run per folder, resumed state that
is verified, inputs checked for what training needs, signals, unusual files.

Each test is one case of the reliability sweep (issue "Reliability v2"); command-line cases
assert exit code 2 (130/143 for signals), one line on stderr that names the file or argument,
and that nothing the user owns changed.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_checkpoint

from s3r_zoo.cli import main
from s3r_zoo.data.simulated_sets import write_dataset

TINY = ["--data", "synthetic:pdac_like", "--synthetic-n", "4", "--epochs", "1", "--batch-size", "4", "--crop", "32",
        "--crops-per-cube", "1", "--mask-patch", "8"]


def _cli_error(capsys, argv, code=2) -> str:
    """The one line a refused or interrupted command ends with (progress lines may come before it)."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    ours = [line for line in err.splitlines() if line.startswith("s3r-zoo ")]
    assert len(ours) == 1 and err.endswith(ours[0]) and "Traceback" not in err, err
    return ours[0]


def _cubes(folder, bands_of: dict, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, b in bands_of.items():
        np.save(folder / name, (0.3 + 0.4 * rng.random((size, size, b))).astype(np.float32))
    return folder


@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


# --- data loss ----------------------------------------------------------------------------------------

def test_embed_keeps_a_users_parts_folder(tmp_path):
    make_checkpoint(tmp_path / "enc.safetensors", in_chans=6, wavelengths=None)
    src = _cubes(tmp_path / "cubes", {"a.npy": 6, "b.npy": 6})
    out = tmp_path / "out"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "notes.txt").write_text("mine")
    assert main(["embed", str(src), "--init", str(tmp_path / "enc.safetensors"), "--model", "s3r_resnet18",
                 "--normalize", "data", "--out", str(out)]) == 0
    assert (out / "parts" / "notes.txt").read_text() == "mine" and (out / "features.npy").is_file()


def test_convert_refuses_two_inputs_that_would_write_one_file(tmp_path, capsys):
    from scipy.io import savemat

    src = tmp_path / "src"
    src.mkdir()
    cube = np.random.default_rng(0).random((8, 8, 5)).astype(np.float32)
    savemat(src / "x.mat", {"cube": cube})
    np.savez(src / "x.npz", cube=cube)
    err = _cli_error(capsys, ["data", "convert", str(src), "--out", str(tmp_path / "out")])
    assert "x.mat and x.npz would both become x.npy" in err and "convert them into separate --out folders" in err
    assert not (tmp_path / "out").exists()


# --- one run per output folder ------------------------------------------------------------------------

def _lock(out, pid):
    out.mkdir(parents=True, exist_ok=True)
    (out / ".s3r-zoo.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "pretrain"}))


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "run", holder.pid)
        err = _cli_error(capsys, ["pretrain", *TINY, "--out", str(tmp_path / "run")])
    finally:
        holder.kill()
        holder.wait()
    assert f"is in use by process {holder.pid} on {socket.gethostname()}" in err and ".s3r-zoo.lock" in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".s3r-zoo.lock"]  # nothing written


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(tmp_path / "run", dead.pid)
    assert main(["pretrain", *TINY, "--out", str(tmp_path / "run")]) == 0
    assert "stale lock" in caplog.text and str(dead.pid) in caplog.text
    assert not (tmp_path / "run" / ".s3r-zoo.lock").exists()  # released at the end


def test_the_lock_is_released_when_a_run_fails(tmp_path, capsys):
    _cli_error(capsys, ["pretrain", *TINY, "--out", str(tmp_path / "run"), "--batch-size", "64"])
    assert not (tmp_path / "run" / ".s3r-zoo.lock").exists()


# --- resumed state is verified --------------------------------------------------------------------------

def test_an_edited_stats_json_is_refused_on_resume(finished_run, capsys):
    path = finished_run / "stats.json"
    stats = json.loads(path.read_text())
    stats["mean"][0] = 5.0
    path.write_text(json.dumps(stats))
    err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "3", "--out", str(finished_run), "--resume"])
    assert f"{path}: the per-band mean/std differ from those the saved state was trained with" in err


def test_a_nan_in_stats_json_names_the_file(finished_run, capsys):
    path = finished_run / "stats.json"
    stats = json.loads(path.read_text())
    stats["std"][1] = float("nan")
    path.write_text(json.dumps(stats))
    err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "3", "--out", str(finished_run), "--resume"])
    assert f"{path}: expected finite per-band mean and std > 0, found" in err


def test_a_truncated_best_weights_file_is_refused_before_training(tmp_path, capsys):
    data = tmp_path / "d"
    write_dataset(data, "pdac_like", n=12, size=24, seed=0, difficulty=0.0, split=(0.5, 0.25, 0.25))
    capsys.readouterr()
    args = ["finetune", "--data", str(data), "--epochs", "2", "--batch-size", "2", "--amp", "none",
            "--out", str(tmp_path / "ft")]
    assert main(args) == 0
    best = tmp_path / "ft" / "seed_0" / "best_val.safetensors"
    best.write_bytes(best.read_bytes()[:500])
    before = (tmp_path / "ft" / "seed_0" / "metrics.jsonl").read_text()
    err = _cli_error(capsys, [*args[:4], "3", *args[5:], "--resume"])
    assert f"{best}: not a readable weights file" in err
    assert (tmp_path / "ft" / "seed_0" / "metrics.jsonl").read_text() == before


def test_a_corrupt_cached_result_names_the_file(tmp_path, capsys):
    from s3r_zoo.files import read_json

    (tmp_path / "aggregate.json").write_text('{"seeds": [1, 2')
    with pytest.raises(ValueError, match=r"aggregate.json: not valid JSON \(line 1"):
        read_json(tmp_path / "aggregate.json")


def test_resume_with_the_data_path_spelled_another_way(tmp_path, monkeypatch):
    write_dataset(tmp_path / "d", "pdac_like", n=6, size=24, seed=0, difficulty=0.0)
    monkeypatch.chdir(tmp_path)
    args = ["pretrain", "--epochs", "1", "--batch-size", "2", "--crop", "16", "--crops-per-cube", "1",
            "--mask-patch", "8", "--amp", "none"]
    assert main([*args, "--data", "d", "--out", "run"]) == 0
    assert main([*args[:2], "2", *args[3:], "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"),
                 "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2


# --- inputs checked for what training needs ------------------------------------------------------------

def test_finetune_refuses_a_split_with_one_class(tmp_path, capsys):
    data = tmp_path / "d"
    write_dataset(data, "pdac_like", n=12, size=24, seed=0, difficulty=0.0, split=(0.5, 0.25, 0.25))
    lines = (data / "train.txt").read_text().splitlines()
    first = lines[0].rsplit(None, 1)[1]
    (data / "train.txt").write_text("".join(f"{ln.rsplit(None, 1)[0]} {first}\n" for ln in lines))
    capsys.readouterr()
    err = _cli_error(capsys, ["finetune", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "ft")])
    assert f"{data / 'train.txt'}: every cube is of one class ({first!r})" in err and "at least 2" in err
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("name", ["low grade", "grade#1"])
def test_split_refuses_class_names_its_files_cannot_hold(tmp_path, capsys, name):
    src = tmp_path / "scans"
    for c in (name, "normal"):
        _cubes(src / c, {f"s{i}.npy": 4 for i in range(4)}, size=4)
    err = _cli_error(capsys, ["data", "split", str(src), "--out", str(tmp_path / "split")])
    assert f"class {name!r}" in err and "whitespace or '#'" in err
    assert not (tmp_path / "split").exists()


def test_split_file_class_names_round_trip(tmp_path):
    from s3r_zoo.data.sources import read_split_file

    src = tmp_path / "scans"
    for c in ("low_grade", "high-grade"):
        _cubes(src / c, {f"s{i}.npy": 4 for i in range(4)}, size=4)
    assert main(["data", "split", str(src), "--out", str(tmp_path / "split"), "--ratios", "1", "0", "0"]) == 0
    _, names = read_split_file(tmp_path / "split" / "train.txt")
    assert names == ["high-grade", "low_grade"]


def test_split_refuses_one_scan_listed_under_two_spellings(tmp_path, capsys):
    _cubes(tmp_path, {f"s{i:02d}.npy": 4 for i in range(6)}, size=4)
    rows = ["path,label,patient", "./s00.npy,a,p0", "s00.npy,a,p1"] + [f"s{i:02d}.npy,{'ab'[i % 2]},p{i}"
                                                                       for i in range(1, 6)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    err = _cli_error(capsys, ["data", "split", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "split")])
    assert f"{tmp_path / 'labels.csv'}:3: s00.npy is listed twice (first on line 2)" in err
    assert not (tmp_path / "split").exists()


def test_a_folder_mixing_band_counts_is_refused_listing_the_odd_files(tmp_path, capsys):
    src = _cubes(tmp_path / "cubes", {"a.npy": 6, "b.npy": 6, "c.npy": 5})
    err = _cli_error(capsys, ["pretrain", "--data", str(src), "--epochs", "1", "--batch-size", "2", "--crop", "16",
                              "--out", str(tmp_path / "run")])
    assert "c.npy" in err and "5 bands" in err and "6" in err
    make_checkpoint(tmp_path / "enc.safetensors", in_chans=6, wavelengths=None)
    err = _cli_error(capsys, ["embed", str(src), "--init", str(tmp_path / "enc.safetensors"), "--model",
                              "s3r_resnet18", "--normalize", "data", "--out", str(tmp_path / "e")])
    assert "c.npy: its bands differ from" in err and "a.npy" in err


def test_a_fifo_named_like_a_cube_is_refused_not_read(tmp_path):
    src = _cubes(tmp_path / "cubes", {"a.npy": 6})
    os.mkfifo(src / "cube.npy")
    res = subprocess.run([sys.executable, "-m", "s3r_zoo", "data", "info", str(src)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{src / 'cube.npy'}: expected a regular file, found a FIFO" in res.stderr


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1"])
def test_a_seed_out_of_range_names_the_option(tmp_path, capsys, seed):
    err = _cli_error(capsys, ["pretrain", *TINY, "--seed", seed, "--out", str(tmp_path / "r")])
    assert "seed: expected an integer" in err and "4294967295" in err


@pytest.mark.parametrize("argv,message", [
    (["data", "stats", "{cubes}", "--out", "{tmp}"], "--out {tmp}: expected a JSON file to write, found a folder"),
    (["data", "synth", "--n", "4", "--size", "8", "--out", "{file}"], "--out {file}: expected a folder, found an "
                                                                       "existing file"),
])
def test_outputs_of_the_wrong_kind_are_one_line(tmp_path, capsys, argv, message):
    src = _cubes(tmp_path / "cubes", {"a.npy": 4}, size=4)
    (tmp_path / "f.txt").write_text("mine")
    fill = {"cubes": str(src), "tmp": str(tmp_path), "file": str(tmp_path / "f.txt")}
    err = _cli_error(capsys, [a.format(**fill) for a in argv])
    assert message.format(**fill) in err
    assert (tmp_path / "f.txt").read_text() == "mine"


def test_an_unreadable_folder_is_one_line(tmp_path, capsys, monkeypatch):
    """Root reads any folder, so the denial is simulated where the folder is listed."""
    src = _cubes(tmp_path / "cubes", {"a.npy": 4}, size=4)

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.iterdir", denied)
    err = _cli_error(capsys, ["data", "qc", str(src), "--out", str(tmp_path / "qc")])
    assert err == f"s3r-zoo data qc: error: {src}: cannot read (Permission denied)"


# --- signals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_a_run_with_one_line_and_a_resumable_state(tmp_path, capsys, monkeypatch, sig, code):
    from s3r_zoo.pretrain.objectives import S3RObjective

    real, calls = S3RObjective.forward, []

    def forward(self, *a, **k):
        calls.append(self.training)
        if calls.count(True) == 2 and self.training:  # epoch 2 (one step per epoch), after epoch 1's state
            os.kill(os.getpid(), sig)
        return real(self, *a, **k)

    monkeypatch.setattr(S3RObjective, "forward", forward)
    # Ctrl-C in a terminal raises KeyboardInterrupt; a job a shell started in the background (`cmd &`, no job
    # control) inherits SIGINT ignored, and so would this test run from one: give it the terminal's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    out = tmp_path / "run"
    try:
        err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "4", "--out", str(out)], code=code)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "interrupted at epoch 2" in err and "saved state: epoch 1" in err and "resume with --resume" in err
    assert not (out / ".s3r-zoo.lock").exists()
    monkeypatch.setattr(S3RObjective, "forward", real)
    assert main(["pretrain", *TINY, "--epochs", "4", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 4


def test_finetune_refuses_splits_of_different_band_sets(tmp_path, capsys):
    """Each split may hold one band set and still differ from the others: checked across them too."""
    data = tmp_path / "d"
    write_dataset(data, "pdac_like", n=12, size=24, seed=0, difficulty=0.0, split=(0.5, 0.25, 0.25))
    other = tmp_path / "o"
    write_dataset(other, "plgc_like", n=12, size=24, seed=0, difficulty=0.0, split=(0.5, 0.25, 0.25))
    (data / "test.txt").write_text("".join(f"{other / ln.rsplit(None, 1)[0]} {'carcinoma' if i % 2 else 'normal'}\n"
                                           for i, ln in enumerate((other / "test.txt").read_text().splitlines())))
    capsys.readouterr()
    err = _cli_error(capsys, ["finetune", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "ft")])
    assert "do not share one band set" in err and "train.txt" in err and "test.txt" in err
    assert not (tmp_path / "ft").exists()
