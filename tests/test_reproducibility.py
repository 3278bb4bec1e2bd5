"""Same seed, same options -> bit-identical results, across separate processes, and after kill -9 + --resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

PRETRAIN = ["pretrain", "--data", "synthetic:pdac_like", "--synthetic-n", "16", "--model", "s3r_resnet18",
            "--objective", "cr", "--batch-size", "4", "--crop", "32", "--mask-patch", "8", "--seed", "5"]


def _zoo(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # bit-exactness is promised on CPU
    return subprocess.Popen([sys.executable, "-m", "s3r_zoo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kw)


def _run(args):
    p = _zoo(args)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return out


def _same_tensors(a, b):
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _saved_step(state):
    try:
        with safe_open(str(state), framework="pt") as f:
            return json.loads(f.metadata()["position"])["global_step"]
    except (FileNotFoundError, SafetensorError, OSError, KeyError, RuntimeError):
        return -1


def test_two_fresh_processes_export_identical_encoders_and_finetunes(tmp_path):
    for name in ("a", "b"):
        _run(PRETRAIN + ["--epochs", "1", "--out", str(tmp_path / name)])
    assert _same_tensors(tmp_path / "a" / "encoder.safetensors", tmp_path / "b" / "encoder.safetensors")

    _run(["data", "synth", "--preset", "pdac_like", "--n", "16", "--size", "32", "--out", str(tmp_path / "d")])
    for name in ("fa", "fb"):
        _run(["finetune", "--data", str(tmp_path / "d"), "--init", str(tmp_path / "a" / "encoder.safetensors"),
              "--epochs", "2", "--batch-size", "4", "--crop", "32", "--seed", "3", "--out", str(tmp_path / name)])
    assert _same_tensors(tmp_path / "fa" / "seed_3" / "best.safetensors", tmp_path / "fb" / "seed_3" / "best.safetensors")
    ma, mb = (json.loads((tmp_path / n / "seed_3" / "metrics.json").read_text()) for n in ("fa", "fb"))
    for key in ("accuracy", "balanced_accuracy", "auroc", "best_epoch", "train_loss", "confusion_matrix"):
        assert ma[key] == mb[key], key


def test_a_busy_core_does_not_change_a_seeded_run(tmp_path):
    """The default settings (bf16 autocast on this CPU, torch's default thread count): the same weights with
    the machine idle and with another process keeping one core busy. (The thread count is what changes the
    bits, not the load: 1 and 2 threads give different weights; README "Reproducibility".)"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    args = [sys.executable, "-m", "s3r_zoo", *PRETRAIN, "--epochs", "1", "--amp", "auto", "--batch-size", "2"]
    subprocess.run([*args, "--out", str(tmp_path / "idle")], check=True, capture_output=True, env=env, timeout=300)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        subprocess.run([*args, "--out", str(tmp_path / "busy")], check=True, capture_output=True, env=env,
                       timeout=300)
    finally:
        hog.kill()
        hog.wait()
    assert _same_tensors(tmp_path / "idle" / "encoder.safetensors", tmp_path / "busy" / "encoder.safetensors")
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("idle", "busy"))
    assert a["skipped_steps"] == b["skipped_steps"] and a["final_loss"] == b["final_loss"]


RESUMABLE = PRETRAIN + ["--epochs", "3", "--ckpt-every", "1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    _run(RESUMABLE + ["--out", str(out)])
    return out


@pytest.mark.parametrize("kill_after", [2, 6])  # inside the first epoch; inside the second
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path, uninterrupted, kill_after):
    args = RESUMABLE

    out = tmp_path / "killed"
    p = _zoo(args + ["--out", str(out)])
    deadline = time.time() + 240
    while _saved_step(out / "state.safetensors") < kill_after and p.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    if p.poll() is not None:
        pytest.fail(f"the run ended before step {kill_after} could be interrupted:\n{p.communicate()[0]}")
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL and not (out / "encoder.safetensors").exists()

    _run(args + ["--out", str(out), "--resume"])
    assert _same_tensors(uninterrupted / "encoder.safetensors", out / "encoder.safetensors")
    full, resumed = (json.loads((d / "summary.json").read_text()) for d in (uninterrupted, out))
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice after the resume
