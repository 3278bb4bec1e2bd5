"""S3R pre-training: targets, masks, objectives, the trainer loop, resume, export, bad input."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

import s3r_zoo
from s3r_zoo.lowrank import gram, loo_coefficients, loo_coefficients_rows, ridge_lambda
from s3r_zoo.models import build_encoder
from s3r_zoo.pretrain import PretrainSpec, RegressObjective, S3RObjective, coefficient_targets, run_pretrain
from s3r_zoo.train import engine
from s3r_zoo.train import NonFiniteLossError, ResumeError, TrainConfig, Trainer, band_patch_masks
from s3r_zoo.data.simulated_sets import SyntheticHSI

B = 12


def low_rank_cube(n=3, b=B, h=16, w=16, rank=3, seed=0):
    g = np.random.default_rng(seed)
    abund = g.random((n, rank, h * w))
    spectra = g.random((rank, b)) + 0.1
    x = np.einsum("nrp,rb->nbp", abund, spectra) + 1e-3 * g.standard_normal((n, b, h * w))
    return torch.from_numpy(x.reshape(n, b, h, w))


def loo_coefficients_single(g: torch.Tensor, band: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Reference for the tests: one target band per item, by solving the (B-1) system directly.

    Args:
        g: Gram matrix (N, B, B).
        band: Target band index per item (N,).
        ridge: As in :func:`loo_coefficients`.

    Returns:
        (N, B) float64 with a 0 at the target band; equals the matching row of
        :func:`loo_coefficients`.
    """
    n, b, _ = g.shape
    idx = torch.arange(b, device=g.device)
    keep = idx[None, :] != band[:, None]  # (N, B)
    others = idx[None, :].expand(n, b)[keep].view(n, b - 1)
    rows = torch.arange(n, device=g.device)[:, None]
    g_oo = g[rows[..., None], others[:, :, None], others[:, None, :]]  # (N, B-1, B-1)
    g_ob = g[rows, others, band[:, None]]  # (N, B-1)
    lam = ridge_lambda(g, ridge)
    eye = torch.eye(b - 1, dtype=g.dtype, device=g.device)
    coef = torch.linalg.solve(g_oo + lam * eye, g_ob[..., None])[..., 0]
    out = torch.zeros(n, b, dtype=g.dtype, device=g.device)
    out[keep] = coef.reshape(-1)
    return out


def test_closed_form_targets_equal_lstsq():
    cube = low_rank_cube()
    band = torch.tensor([0, 5, B - 1])
    beta = coefficient_targets(cube, band, ridge=0.0)
    for i in range(3):
        pix = cube[i].reshape(B, -1).T.numpy()
        b = int(band[i])
        coef = np.linalg.lstsq(np.delete(pix, b, 1), pix[:, b], rcond=None)[0]
        got = np.delete(beta[i].numpy(), b)
        assert beta[i, b] == 0
        assert np.linalg.norm(got - coef) / np.linalg.norm(coef) < 1e-5


def test_all_bands_at_once_equals_per_band_solve():
    g = gram(low_rank_cube(n=4).reshape(4, B, -1).transpose(1, 2))
    for ridge in (0.0, 1e-4):
        full = loo_coefficients(g, ridge)
        bands = torch.tensor([1, 4, 7, 11])
        single = loo_coefficients_single(g, bands, ridge)
        torch.testing.assert_close(full[torch.arange(4), bands], single, rtol=1e-7, atol=1e-9)


def test_all_bands_rows_equal_one_column_solve():
    g = gram(low_rank_cube(n=4).reshape(4, B, -1).transpose(1, 2))
    bands = torch.tensor([0, 4, 7, 11])
    for ridge in (0.0, 1e-4):
        full = loo_coefficients(g, ridge)[torch.arange(4), bands]
        torch.testing.assert_close(loo_coefficients_rows(g, bands, ridge), full, rtol=1e-7, atol=1e-9)


def test_float32_gram_is_shifted_and_accurate():
    # bright, highly correlated bands: the case where raw float32 sums lose digits
    x = low_rank_cube(n=2, h=64, w=64, seed=1) * 1e3 + 5e3
    pix = x.reshape(2, B, -1).transpose(1, 2)
    g64 = gram(pix)
    g32 = gram(pix.float())
    assert g32.dtype == torch.float64
    raw = (pix.float().transpose(1, 2) @ pix.float()).double()
    err32 = ((g32 - g64).abs().max() / g64.abs().max()).item()
    assert err32 < 1e-7 and err32 < 0.1 * ((raw - g64).abs().max() / g64.abs().max()).item()
    b64, b32 = loo_coefficients(g64, 1e-4), loo_coefficients(g32, 1e-4)
    assert ((b32 - b64).norm(dim=-1) / b64.norm(dim=-1)).max() < 1e-3  # raw float32 sums: 7e-3
    centered = gram(pix, center=True)
    torch.testing.assert_close(gram(pix.float(), center=True), centered, rtol=1e-5, atol=1e-6 * centered.max().item())


def test_targets_in_float64_under_autocast():
    cube = low_rank_cube().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        beta = coefficient_targets(cube, torch.tensor([2, 3, 4]))
    assert beta.dtype == torch.float64


def test_masks_ratio_and_independent_per_band():
    m = band_patch_masks(2, 40, 64, 64, ratio=0.65, patch=8, generator=torch.Generator().manual_seed(0))
    assert m.shape == (2, 40, 64, 64) and m.dtype == torch.bool
    frac = m.float().mean(dim=(2, 3))
    assert torch.allclose(frac, torch.full_like(frac, round(0.65 * 64) / 64))  # exact, per band
    assert not torch.equal(m[0, 0], m[0, 1]) and not torch.equal(m[0, 0], m[1, 0])
    # patch structure: constant within each 8x8 patch
    assert torch.equal(m[0, 0], m[0, 0, ::8, ::8].repeat_interleave(8, 0).repeat_interleave(8, 1))
    with pytest.raises(ValueError, match="mask ratio"):
        band_patch_masks(1, 3, 8, 8, ratio=1.0)


def _stats(ds):
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


@pytest.fixture(scope="module")
def synth():
    ds = SyntheticHSI("plgc_like", n=8, size=32, seed=0)
    return ds, _stats(ds)


@pytest.mark.parametrize("mode", ["cr", "br"])
def test_losses_fall_on_simulated_data(synth, tmp_path, mode):
    ds, (mean, std) = synth
    torch.manual_seed(0)
    obj = S3RObjective(build_encoder("s3r_resnet18", 32), mean, std, mode=mode, mask_patch=8)
    probe = torch.stack([ds[i][0] for i in range(len(ds))])
    bands = torch.arange(len(ds)) * 4 % 32

    def probe_loss():
        torch.manual_seed(123)  # same masks every time
        obj.train()  # batch statistics, as the training loss sees them (running stats lag after few steps)
        dev = obj.mean.device  # the trainer moves the objective to its device (CUDA where there is one)
        with torch.no_grad():
            return float(obj(probe.to(dev), bands.to(dev))["loss"])

    before = probe_loss()
    # BR's loss divides each crop's error by its own spread, so a few flat crops dominate it: 24 steps at lr 3e-4
    # moved it by 0.34-1.24x across four seeds (a pass or a fail by the seed's luck); 48 steps at lr 1e-3 cut it
    # to 0.23-0.55x on all four. CR falls steadily at the lighter setting.
    epochs, lr = (12, 3e-4) if mode == "cr" else (24, 1e-3)
    cfg = TrainConfig(epochs=epochs, batch_size=4, lr=lr, patience=100)
    hist = Trainer(cfg, tmp_path).fit(obj, ds)["history"]
    after = probe_loss()
    assert all(np.isfinite([h["loss"] for h in hist])) and after < 0.7 * before, (before, after)
    print("LOSSES", before, after)


@pytest.mark.parametrize("mask", [True, False])
def test_regress_ablation_runs(synth, tmp_path, mask):
    ds, (mean, std) = synth
    obj = RegressObjective(build_encoder("s3r_resnet18", 32), mean, std, mask=mask, mask_patch=8, width=32)
    out = obj(torch.stack([ds[0][0], ds[1][0]]))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert obj.decoder[0].weight.grad is not None
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in obj.decoder) == 5


class Boom(Exception):
    pass


def _make(mean, std):
    torch.manual_seed(0)
    return S3RObjective(build_encoder("s3r_resnet18", 32), mean, std, mode="cr", mask_patch=8)


def test_kill_and_resume_equals_uninterrupted(synth, tmp_path):
    ds, (mean, std) = synth
    cfg = dict(epochs=3, batch_size=4, ckpt_every=1, patience=100)
    full = Trainer(TrainConfig(**cfg), tmp_path / "a", device="cpu").fit(_make(mean, std), ds)  # bit-exact: CPU
    obj = _make(mean, std)
    fwd, calls = obj.forward, {"n": 0}

    def dying(x, band=None):
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 2, second step: after the step-3 checkpoint
            raise Boom()
        return fwd(x, band)

    obj.forward = dying
    with pytest.raises(Boom):
        Trainer(TrainConfig(**cfg), tmp_path / "b", device="cpu").fit(obj, ds)
    resumed = Trainer(TrainConfig(**cfg), tmp_path / "b", device="cpu").fit(_make(mean, std), ds, resume=True)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    a, b = load_file(tmp_path / "a" / "state.safetensors"), load_file(tmp_path / "b" / "state.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_state_every_n_epochs_saves_the_last_and_resumes_to_the_same_run(synth, tmp_path, monkeypatch):
    ds, (mean, std) = synth
    cfg = dict(epochs=3, batch_size=4, patience=100, state_every=2)
    full = Trainer(TrainConfig(**cfg), tmp_path / "a", device="cpu").fit(_make(mean, std), ds)
    saved = []
    real = engine.save_state
    monkeypatch.setattr(engine, "save_state", lambda path, fp, obj, opt, sched, scaler, pos, dev: (
        saved.append(pos["epoch"]), real(path, fp, obj, opt, sched, scaler, pos, dev)))
    obj = _make(mean, std)
    fwd, calls = obj.forward, {"n": 0}

    def dying(x, band=None):
        calls["n"] += 1
        if calls["n"] == 5:  # 2 steps per epoch: epoch 3's first step, after epoch 2's state
            raise Boom()
        return fwd(x, band)

    obj.forward = dying
    with pytest.raises(Boom):
        Trainer(TrainConfig(**cfg), tmp_path / "b", device="cpu").fit(obj, ds)
    assert saved == [2]  # epoch 1 was not saved (every 2 epochs)
    # a saved state may be continued with another interval: it changes when, not what, is saved
    resumed = Trainer(TrainConfig(**{**cfg, "state_every": 5}), tmp_path / "b", device="cpu").fit(
        _make(mean, std), ds, resume=True)
    assert saved == [2, 3]  # the last epoch is always saved
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    a, b = load_file(tmp_path / "a" / "state.safetensors"), load_file(tmp_path / "b" / "state.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_configuration(synth, tmp_path):
    ds, (mean, std) = synth
    Trainer(TrainConfig(epochs=1, batch_size=4), tmp_path).fit(_make(mean, std), ds)
    with pytest.raises(ResumeError, match="written by another configuration"):
        Trainer(TrainConfig(epochs=2, batch_size=4, lr=1e-3), tmp_path).fit(_make(mean, std), ds, resume=True)
    with pytest.raises(ResumeError, match="exists: pass resume=True"):
        Trainer(TrainConfig(epochs=2, batch_size=4), tmp_path).fit(_make(mean, std), ds)
    # only the epoch budget may change
    more = Trainer(TrainConfig(epochs=2, batch_size=4), tmp_path).fit(_make(mean, std), ds, resume=True)
    assert more["epochs"] == 2


def test_early_stop(synth, tmp_path):
    ds, (mean, std) = synth
    s = Trainer(TrainConfig(epochs=50, batch_size=4, patience=1, min_delta=1e9), tmp_path).fit(_make(mean, std), ds)
    assert s["stop"] == "early_stop" and s["epochs"] == 2


def test_bad_inputs(synth, tmp_path):
    ds, (mean, std) = synth
    with pytest.raises(ValueError, match="at least 3 bands"):
        S3RObjective(build_encoder("s3r_resnet18", 2), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="encoder takes 32 bands, the data has 40"):
        S3RObjective(build_encoder("s3r_resnet18", 32), [0.0] * 40, [1.0] * 40)
    obj = _make(mean, std)
    with pytest.raises(ValueError, match=r"batch: expected \(N, 32, H, W\), found \(2, 40, 32, 32\)"):
        obj(torch.rand(2, 40, 32, 32))
    with pytest.raises(ValueError, match="amp='fp16' needs CUDA"):
        Trainer(TrainConfig(amp="fp16"), tmp_path / "x", device="cpu")
    bad = [(torch.full((32, 32, 32), float("nan")), 0)] * 4
    with pytest.raises(ValueError, match="epoch 1, step 1: the batch holds NaN/Inf"):
        Trainer(TrainConfig(epochs=1, batch_size=4), tmp_path / "nan").fit(_make(mean, std), bad)
    obj = _make(mean, std)
    obj.forward = lambda x, band=None: {"loss": torch.tensor(float("inf"), requires_grad=True)}
    with pytest.raises(NonFiniteLossError, match="NaN/Inf for 2 consecutive steps"):
        Trainer(TrainConfig(epochs=5, batch_size=4, max_bad_steps=2), tmp_path / "inf").fit(obj, ds)
    with pytest.raises(NonFiniteLossError, match="epoch 1: the loss was NaN/Inf at every step"):
        Trainer(TrainConfig(epochs=5, batch_size=4, max_bad_steps=100), tmp_path / "inf2").fit(obj, ds)


def test_a_non_finite_gradient_skips_its_step(synth, tmp_path):
    """A finite loss with a NaN gradient (as bf16 can give) must not reach the weights: the step is skipped."""
    ds, (mean, std) = synth
    obj = _make(mean, std)
    forward, calls = obj.forward, []

    def poisoned(x, band=None):
        out = forward(x, band)
        calls.append(1)
        if len(calls) == 2:  # d sqrt(u)/du is inf at u = 0; times 0: NaN in every gradient, the loss stays finite
            out["loss"] = out["loss"] + (out["loss"] * 0).sqrt()
        return out

    obj.forward = poisoned
    summary = Trainer(TrainConfig(epochs=1, batch_size=2), tmp_path).fit(obj, ds)
    assert summary["skipped_steps"] == 1 and math.isfinite(summary["final_loss"])
    assert all(torch.isfinite(p).all() for p in obj.parameters())
    skips = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if '"skip"' in line]
    assert [(s["step"], s["reason"]) for s in skips] == [(2, "non-finite gradient")]


def test_a_training_step_never_reads_a_tensor_on_the_host(synth, tmp_path, monkeypatch):
    """No host sync inside a step (a GPU would idle while the host waits): every Python-level read of a tensor
    value (item, float, int, bool, tolist, numpy, cpu) raises inside ``Trainer._step``; the steps' outcomes are
    read every ``log_every`` steps and at the epoch end, and the run's losses are what they were."""
    ds, (mean, std) = synth
    base = Trainer(TrainConfig(epochs=2, batch_size=2, log_every=1), tmp_path / "base").fit(_make(mean, std), ds)
    inside = []

    def guard(name):
        real = getattr(torch.Tensor, name)

        def read(self, *a, **k):
            if inside:
                raise AssertionError(f"host read Tensor.{name} inside a training step")
            return real(self, *a, **k)
        return read

    for name in ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, guard(name))
    step = Trainer._step

    def watched(self, *a):
        inside.append(1)
        try:
            return step(self, *a)
        finally:
            inside.pop()

    monkeypatch.setattr(Trainer, "_step", watched)
    summary = Trainer(TrainConfig(epochs=2, batch_size=2, log_every=3), tmp_path / "guarded").fit(_make(mean, std), ds)
    assert [h["loss"] for h in summary["history"]] == [h["loss"] for h in base["history"]]
    logged = [json.loads(line)["step"] for line in (tmp_path / "guarded" / "metrics.jsonl").read_text().splitlines()
              if '"kind": "step"' in line]
    assert logged == [3, 6]  # 4 steps an epoch: the records of steps 3 and 6 were written when read


def test_crop_larger_than_cube(tmp_path):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((20, 20, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=r"crop \(32, 32\) is larger than the cube \(20 x 20\)"):
        run_pretrain(PretrainSpec(data=str(tmp_path / "c.npy"), out=str(tmp_path / "o"), crop=32, epochs=1))


def test_export_loads_through_create_model(tmp_path):
    s = run_pretrain(PretrainSpec(data="synthetic:pdac_like", out=str(tmp_path), epochs=2, batch_size=4, crop=32,
                                  synthetic_n=8, mask_patch=8))
    best = load_file(tmp_path / "best_val.safetensors")  # the weights of the best validation epoch are exported
    assert s["validation"]["exported"] == f"best validation epoch {s['best_epoch']}"
    model = timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=s["checkpoint"]))
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[f"encoder.{k}"]), k
    info = s3r_zoo.read_checkpoint_info(s["checkpoint"])
    assert info.objective == "cr" and info.in_chans == 40 and info.wavelengths_nm[0] == 450.0
    assert float(info.extra["final_loss"]) == pytest.approx(s["final_loss"])
    for f in ("loss_curve.png", "beta_profile.png", "metrics.jsonl", "summary.json", "stats.json"):
        assert (tmp_path / f).stat().st_size > 0
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert kinds[-2:] == ["epoch", "val"] and kinds.count("val") == 2  # one held-out evaluation per epoch


def test_cli_pretrain_with_yaml(tmp_path, capsys):
    from s3r_zoo.cli import main

    (tmp_path / "c.yaml").write_text("objective: br\nepochs: 1\nbatch_size: 4\ncrop: 32\nsynthetic_n: 4\n"
                                     "mask_patch: 8\n")
    assert main(["pretrain", "--config", str(tmp_path / "c.yaml"), "--data", "synthetic:plgc_like",
                 "--out", str(tmp_path / "o")]) == 0
    assert "1 epochs" in capsys.readouterr().out
    assert s3r_zoo.read_checkpoint_info(tmp_path / "o" / "encoder.safetensors").objective == "br"
    (tmp_path / "bad.yaml").write_text("epochz: 3\n")
    assert main(["pretrain", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown keys ['epochz']" in capsys.readouterr().err


def test_torchrun_two_processes_gloo(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # gloo on CPU, also on a GPU machine
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "s3r_zoo", "pretrain", "--data", "synthetic:plgc_like", "--synthetic-n", "8", "--crop", "32",
           "--batch-size", "2", "--epochs", "2", "--mask-patch", "8", "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    assert s3r_zoo.read_checkpoint_info(tmp_path / "encoder.safetensors").in_chans == 32


def test_bf16_autocast_on_cpu(synth, tmp_path):
    ds, (mean, std) = synth
    s = Trainer(TrainConfig(epochs=1, batch_size=4, amp="bf16"), tmp_path).fit(_make(mean, std), ds)
    assert np.isfinite(s["final_loss"])


def test_tensorboard_is_optional(synth, tmp_path):
    ds, (mean, std) = synth
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the 'tensorboard' package"):
            Trainer(TrainConfig(epochs=1, batch_size=4, tensorboard=True), tmp_path)
        return
    Trainer(TrainConfig(epochs=1, batch_size=4, tensorboard=True, log_every=1), tmp_path).fit(_make(mean, std), ds)
    assert any((tmp_path / "tensorboard").iterdir())


def test_same_seed_gives_the_same_initial_and_trained_encoder(tmp_path):
    """Two fresh runs with one seed export bit-identical encoders: the seed fixes the init too."""
    def run(name):
        spec = PretrainSpec(data="synthetic:pdac_like", synthetic_n=4, model="s3r_resnet18", objective="cr",
                            epochs=1, batch_size=4, crop=32, crops_per_cube=1, mask_patch=8, seed=5,
                            out=str(tmp_path / name))
        torch.manual_seed(len(name))  # whatever the global RNG held before must not matter
        return load_file(run_pretrain(spec)["checkpoint"])

    a, b = run("a"), run("bb")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_console_verdict_warns_when_the_exported_weights_are_worse_than_a_trivial_baseline():
    from s3r_zoo.pretrain.run import format_summary
    from s3r_zoo.pretrain.validation import pretext_verdict

    m = {"cr_l1": 1.98, "cr_l1_zeros": 1.53, "cr_l1_band_mean": 0.50, "br_error": 0.05, "br_error_closed_form": 0.03,
         "br_error_band_mean": 0.04}
    s = {"epochs": 1, "steps": 3, "stop": "max_epochs", "wall_time_s": 2.0, "final_loss": 2.1198,
         "checkpoint": "runs/x/encoder.safetensors", "warnings": pretext_verdict(m),
         "validation": {"held_out": "the bottom 12 rows", "exported": "best validation epoch 1", "metrics": m}}
    text = format_summary(s)
    assert "CR L1 1.980 (zeros 1.530, band-mean 0.500)" in text
    assert "WARNING: held-out CR L1 1.980 is not below predicting zeros (1.530)" in text
    assert "WARNING: held-out BR unexplained variance 0.0500 is above the band-mean" in text
    good = {**m, "cr_l1": 0.3, "br_error": 0.031}
    assert "WARNING" not in format_summary({**s, "warnings": pretext_verdict(good),
                                            "validation": {**s["validation"], "metrics": good}})
