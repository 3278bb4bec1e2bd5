"""How S3R's training signal is built: target bands, per-sample losses and augmentation, ridge, AMP."""

import json

import numpy as np
import pytest
import timm
import torch

from s3r_zoo import read_checkpoint_info
from s3r_zoo.data import UnlabelledCubes
from s3r_zoo.data.transforms import HSIAugment
from s3r_zoo.finetune import ClassifierObjective
from s3r_zoo.pretrain import PretrainSpec, S3RObjective, coefficient_targets, run_pretrain
from s3r_zoo.pretrain.objectives import band_regression_error
from s3r_zoo.pretrain.run import select_target_bands
from s3r_zoo.train import setup
from s3r_zoo.train.setup import resolve_amp

B = 8


def _low_rank(n=2, h=16, w=16, seed=0):
    g = np.random.default_rng(seed)
    abund = g.random((n, 3, h * w))
    spectra = g.random((3, B)) + 0.1
    return torch.from_numpy(np.einsum("nrp,rb->nbp", abund, spectra).reshape(n, B, h, w)).float()


def test_br_error_is_per_sample_and_scale_free():
    """A sample 1000x brighter gets the same error for the same relative mistake: it cannot dominate."""
    x = _low_rank(n=1)
    band = torch.tensor([2, 2])
    beta = coefficient_targets(x, band[:1]).float().repeat(2, 1) * 0.9  # the same 10 % wrong coefficients
    cube = torch.cat([x, 1000 * x])
    err = band_regression_error(cube, band, beta, torch.tensor([0.1, 0.1]))
    torch.testing.assert_close(err[0], err[1], rtol=1e-4, atol=0)
    # by hand: mean |Y_b - sum beta Y| / std(Y_b)
    yb = x[0, 2]
    recon = torch.einsum("b,bhw->hw", beta[0], x[0])
    torch.testing.assert_close(err[0], (yb - recon).abs().mean() / yb.std(), rtol=1e-5, atol=0)
    flat = torch.ones(1, B, 4, 4)  # no spread at all: the floor (a tenth of the data's std) applies
    e = band_regression_error(flat, torch.tensor([0]), torch.zeros(1, B), torch.tensor([0.5]))
    torch.testing.assert_close(e, torch.tensor([1.0 / 0.05]))


def test_target_bands_are_the_only_ones_drawn():
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, target_bands=[1, 4])
    torch.manual_seed(0)
    drawn = obj.draw_bands(2000, "cpu")
    assert set(drawn.tolist()) == {1, 4} and abs((drawn == 1).float().mean().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match=r"target_bands: expected band indices in 0..7, found \[3, 9\]"):
        S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, target_bands=[3, 9])


def test_the_r2_rule_excludes_a_noise_band(tmp_path):
    cube = _low_rank(n=1, h=64, w=64)[0].permute(1, 2, 0).numpy()
    cube[..., 5] = np.random.default_rng(1).normal(0.5, 0.3, cube.shape[:2])  # pure noise: no band explains it
    np.save(tmp_path / "c.npy", cube.astype(np.float32))
    spec = PretrainSpec(data=str(tmp_path / "c.npy"), crop=32, stats_samples=8, objective="cr")
    ds = UnlabelledCubes(tmp_path / "c.npy", crop=32, crops_per_cube=8)
    keep, record = select_target_bands(spec, ds, None)
    assert 5 not in keep and record["excluded"] == [5] and record["r2"][5] < 0.1 and min(
        r for i, r in enumerate(record["r2"]) if i != 5) > 0.99
    explicit, rec = select_target_bands(PretrainSpec(crop=32, target_bands=[0, 2]), ds, None)
    assert explicit == [0, 2] and rec["rule"] == "explicit --target-bands"
    none, _ = select_target_bands(PretrainSpec(crop=32, objective="simsiam"), ds, None)
    assert none is None  # objectives without a target band are not affected


def test_780_nm_is_excluded_on_the_hims_cube(hims_dir):
    spec = PretrainSpec(data=str(hims_dir / "cube_hwc_f16.npy"), crop=96, stats_samples=16, nan="inpaint")
    ds = UnlabelledCubes(hims_dir / "cube_hwc_f16.npy", crop=96, crops_per_cube=16, nan="inpaint")
    keep, record = select_target_bands(spec, ds, np.arange(380.0, 781.0, 10.0))
    assert 780.0 in record["excluded_nm"] and 40 not in keep
    assert all(450 <= nm or nm <= 400 or nm >= 700 for nm in record["excluded_nm"])  # the signal bands stay
    assert len(keep) >= 30


def test_ridge_and_target_bands_are_recorded(tmp_path):
    s = run_pretrain(PretrainSpec(data="synthetic:pdac_like", synthetic_n=4, epochs=1, batch_size=4, crop=32,
                                  crops_per_cube=1, mask_patch=8, ridge=1e-3, target_bands=[3, 7, 11],
                                  out=str(tmp_path / "r")))
    info = read_checkpoint_info(s["checkpoint"])
    assert info.recipe["ridge"] == 1e-3 and json.loads(info.extra["target_bands"]) == [3, 7, 11]
    assert s["target_bands"] == [3, 7, 11]


def test_head_prior_is_the_prediction_before_training_and_moves_with_it():
    """start_from(prior): an untrained head predicts prior[b] exactly (0 at b); one step moves it off."""
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, mode="br", mask_patch=4)
    x = _low_rank(n=4)
    band = torch.tensor([1, 2, 5, 6])
    prior = torch.arange(B * B, dtype=torch.float64).reshape(B, B) / 100
    obj.start_from(prior)
    expected = prior.float()[band].masked_fill(torch.nn.functional.one_hot(band, B).bool(), 0.0)
    torch.testing.assert_close(obj.predict(x, band), expected, rtol=0, atol=0)
    opt = torch.optim.SGD(obj.parameters(), lr=0.1)
    obj(x, band)["loss"].backward()
    opt.step()
    assert not torch.allclose(obj.predict(x, band), expected)  # the head learns a correction on top
    with pytest.raises(ValueError, match=r"head prior: expected finite \(8, 8\) coefficients, found \(8, 7\)"):
        obj.start_from(torch.zeros(B, B - 1))


@pytest.mark.parametrize("objective,head_prior,starts_at_band_mean", [
    ("br", "auto", True), ("cr", "auto", False), ("cr", "band-mean", True), ("br", "none", False)])
def test_head_prior_option(tmp_path, objective, head_prior, starts_at_band_mean):
    """auto = the band-mean prior for BR only; with lr ~ 0 the held-out numbers are the start's own."""
    s = run_pretrain(PretrainSpec(data="synthetic:pdac_like", synthetic_n=4, epochs=1, batch_size=4, crop=32,
                                  crops_per_cube=1, mask_patch=8, lr=1e-12, objective=objective,
                                  head_prior=head_prior, out=str(tmp_path / "r")))
    val = s["validation"]["metrics"]
    assert s["recipe"]["head_prior"] == head_prior
    at_prior = val["cr_l1"] == pytest.approx(val["cr_l1_band_mean"], rel=1e-4)
    assert at_prior == starts_at_band_mean
    if starts_at_band_mean:
        assert val["br_error"] == pytest.approx(val["br_error_band_mean"], rel=1e-3)


def test_fine_tuning_augments_each_sample_on_its_own():
    model = timm.create_model("s3r_resnet18", in_chans=4, num_classes=2)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    obj = ClassifierObjective(model, [0.0] * 4, [1.0] * 4, HSIAugment(scale=(0.5, 1.0), max_degrees=15))
    x = torch.rand(1, 4, 32, 32).repeat(2, 1, 1, 1)  # two identical samples
    obj.train()
    obj(x, torch.tensor([0, 1]))
    assert not torch.allclose(seen[0][0], seen[0][1])


@pytest.mark.parametrize("fast,expected", [(True, "bf16"), (False, "none")])
def test_amp_auto(monkeypatch, fast, expected):
    monkeypatch.setattr(setup, "cpu_has_fast_bf16", lambda: fast)
    assert resolve_amp("auto", torch.device("cpu")) == expected
    assert resolve_amp("fp16", torch.device("cpu")) == "fp16"  # an explicit choice is kept (and refused later)


def test_amp_auto_follows_this_cpu():
    flags = [getattr(torch.cpu, n, lambda: False)() for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    assert resolve_amp("auto", torch.device("cpu")) == ("bf16" if any(flags) else "none")


def test_targets_and_losses_stay_full_precision_under_bf16():
    x = _low_rank(n=4)
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, mask_patch=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert coefficient_targets(x, torch.tensor([0, 1, 2, 3])).dtype == torch.float64
        for mode in ("cr", "br"):
            obj.mode = mode
            assert obj(x)["loss"].dtype == torch.float32


# --- held-out validation --------------------------------------------------------------------------

def test_single_cube_is_split_by_rows_no_training_crop_touches_the_held_out_region(tmp_path):
    from s3r_zoo.pretrain.validation import split_train_val

    cube = np.random.default_rng(0).random((100, 40, 5)).astype(np.float32)
    cube[..., 0] = np.arange(100, dtype=np.float32)[:, None]  # band 0 holds the row number
    np.save(tmp_path / "c.npy", cube)
    ds = UnlabelledCubes(tmp_path / "c.npy", crop=16, crops_per_cube=50)
    train, val, what = split_train_val(ds, 0.2, 16, seed=0, val_crops=8)
    assert what == "the bottom 20 of 100 rows (a region no training crop touches)" and len(val) == 8
    train_rows = torch.cat([train[i][0][0, :, 0] for i in range(len(train))])
    val_rows = torch.cat([val[i][0][0, :, 0] for i in range(len(val))])
    assert train_rows.max() < 80 <= val_rows.min() and val_rows.max() <= 99


def test_validation_metrics_by_hand():
    from s3r_zoo.pretrain.validation import _locality, _unexplained

    beta = torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0]])
    assert _locality(beta, torch.tensor([0])).item() == pytest.approx(0.5)  # bands 0-2 hold half of |beta|
    x = torch.zeros(1, 2, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # band 0, mean 2.5, total sum of squares 5
    x[0, 1] = torch.tensor([[1.0, 2.0], [3.0, 5.0]])  # band 1 predicts it with beta 1: residual only at (1, 1)
    err = _unexplained(x, torch.tensor([0]), torch.tensor([[0.0, 1.0]]))
    assert err.item() == pytest.approx(1.0 / 5.0)


def test_validation_is_repeatable_and_leaves_the_training_rng_alone():
    from contextlib import nullcontext

    from s3r_zoo.pretrain.validation import PretextValidation

    x = _low_rank(n=6, h=16, w=16)
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, mask_patch=4)
    v = PretextValidation(x, None, seed=1, batch_size=4, autocast=nullcontext, ridge=1e-4)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b = v(obj), v(obj)
    assert a == b and torch.equal(torch.get_rng_state(), before) and obj.training
    assert a["crops"] == 6 and a["cr_l1"] == pytest.approx(a["loss"], rel=1e-5)  # CR's loss is its L1
    assert 0 < a["locality_closed_form"] <= 1 and a["br_error_closed_form"] < a["br_error"]


@pytest.mark.parametrize("losses,min_delta,stop_epoch,best_epoch", [
    ([1.0, 0.99995, 0.99993, 0.99991, 0.5], 1e-4, 4, 1),  # tiny steps below min_delta never reset patience
    ([1.0, 0.8, 0.9, 0.85, 0.7, 0.75], 1e-4, None, 5),  # an improvement resets it
])
def test_early_stopping_is_keras_style_on_the_validation_loss(tmp_path, losses, min_delta, stop_epoch, best_epoch):
    from s3r_zoo.data.simulated_sets import SyntheticHSI
    from s3r_zoo.train import TrainConfig, Trainer

    ds = SyntheticHSI("pdac_like", n=4, size=16, seed=0)
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=40), [0.5] * 40, [0.2] * 40, mask_patch=4)
    scripted = iter(losses)
    cfg = TrainConfig(epochs=len(losses), batch_size=4, patience=3, min_delta=min_delta, amp="none")
    s = Trainer(cfg, tmp_path, device="cpu").fit(obj, ds, validate=lambda o: {"loss": next(scripted)})
    assert s["stop"] == ("early_stop" if stop_epoch else "max_epochs")
    assert s["epochs"] == (stop_epoch or len(losses)) and s["best_epoch"] == best_epoch
    assert s["best_loss"] == losses[best_epoch - 1]
    assert (tmp_path / "best_val.safetensors").is_file()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_fast_encoder_input_equals_the_full_resolution_masks(layout):
    """Patch-resolution masking fused with the normalisation (the default path) zeroes exactly the positions of
    the reference path (full-resolution masks of the same draws), with +0, keeps the cube's memory layout, and
    equals the reference's normalised values to float rounding."""
    from s3r_zoo.train import apply_masks, band_patch_masks

    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=B), [0.5] * B, [0.2] * B, mask_patch=8)
    obj.mean.copy_(torch.linspace(0.2, 0.9, B).view(1, B, 1, 1))
    obj.std.copy_(torch.linspace(0.05, 0.3, B).view(1, B, 1, 1))
    cube = (torch.rand(3, B, 32, 48) + 0.3).contiguous(memory_format=layout)
    band = torch.tensor([0, 5, 7])
    torch.manual_seed(11)
    fast = obj.encoder_input(cube, band)
    torch.manual_seed(11)
    masks = band_patch_masks(3, B, 32, 48, obj.mask_ratio, 8)
    ref = apply_masks(obj.normalize(cube), masks).masked_fill(
        torch.nn.functional.one_hot(band, B).bool()[:, :, None, None], 0.0)
    assert fast.is_contiguous(memory_format=layout)
    assert torch.equal(fast == 0, ref == 0) and not fast.signbit()[fast == 0].any()
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    assert (fast[torch.arange(3), band] == 0).all() and 0.6 < (fast == 0).float().mean() < 0.75


@pytest.mark.parametrize("name", ["cr", "br", "local", "regress", "mhsim", "convdeconv", "simsiam", "byol", "ssad"])
def test_the_objective_compiles_to_one_graph_without_host_syncs(name):
    """--compile: torch.compile traces every objective's forward as ONE graph (no graph break, so no .item() or
    other host sync inside the step; the siamese views are one batched grid_sample on the device)."""
    from types import SimpleNamespace

    from s3r_zoo.pretrain.registry import make_objective

    spec = SimpleNamespace(objective=name, bands=None, mask_ratio=0.65, mask_patch=8, noise_std=0.0, ridge=1e-4,
                           mask=True, local_weight=1.0)
    obj = make_objective(spec, timm.create_model("s3r_resnet18", in_chans=8, num_classes=0), [0.5] * 8, [0.2] * 8)
    torch._dynamo.reset()
    try:
        explained = torch._dynamo.explain(obj)(0.3 + 0.4 * torch.rand(4, 8, 32, 32))
    finally:
        torch._dynamo.reset()
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def test_local_targets_are_the_closed_form_of_each_patch():
    """Local S3R's map: cell (i, j) holds beta~ of band b computed from that patch's pixels alone."""
    from s3r_zoo.pretrain.local import patch_coefficient_targets

    cube = 0.2 + torch.rand(2, B, 32, 48)
    band = torch.tensor([3, 6])
    got = patch_coefficient_targets(cube, band, 16)
    assert got.shape == (2, B, 2, 3)
    for i in range(2):
        for j in range(3):
            ref = coefficient_targets(cube[:, :, 16 * i:16 * i + 16, 16 * j:16 * j + 16], band)
            torch.testing.assert_close(got[:, :, i, j], ref, rtol=1e-5, atol=1e-6)  # float32 sums, other order
    # different patches, different spectra: different coefficients (the map is not one crop-level vector)
    assert (got[:, :, 0, 0] - got[:, :, 1, 2]).abs().sum() > 1e-3


def test_local_s3r_trains_every_layer_and_predicts_the_map_from_layer3():
    """The local objective's loss is the global CR loss plus the map loss: its gradient reaches layer3 through
    the dense head and layer4 through the pooled head; with local_weight 0 it is S3R-CR's loss."""
    from s3r_zoo.pretrain.local import LocalS3RObjective

    torch.manual_seed(0)
    enc = timm.create_model("s3r_resnet18", in_chans=B, num_classes=0)
    obj = LocalS3RObjective(enc, [0.5] * B, [0.2] * B, mask_patch=8)
    cube = _low_rank(n=3, h=64, w=64) + 0.05 * torch.rand(3, B, 64, 64)
    band = torch.tensor([1, 4, 6])
    torch.manual_seed(1)
    out = obj(cube, band)
    out["loss"].backward()
    assert obj.patch == 16 and out["local_l1"] > 0
    for name in ("local_head.0.weight", "encoder.layer3.1.bn2.weight", "encoder.layer4.1.bn2.weight"):
        assert obj.get_parameter(name).grad.abs().sum() > 0, name
    cr = S3RObjective(enc, [0.5] * B, [0.2] * B, mask_patch=8)
    cr.head.load_state_dict(obj.head.state_dict())
    obj.local_weight = 0.0
    torch.manual_seed(1)
    a = obj(cube, band)["loss"]
    torch.manual_seed(1)
    torch.testing.assert_close(a, cr(cube, band)["loss"])
