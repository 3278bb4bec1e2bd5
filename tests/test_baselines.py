"""Baselines (Table 2) as objectives of the one trainer: method-specific parts and the common path."""

import pytest
import timm
import torch

import s3r_zoo
from s3r_zoo.baselines import BYOLObjective, SimSiamObjective, masked_l1
from s3r_zoo.baselines.simsiam import simsiam_loss
from s3r_zoo.baselines.views import pick_bands, random_view
from s3r_zoo.data.transforms import affine_views
from s3r_zoo.models import build_encoder
from s3r_zoo.pretrain import PretrainSpec, run_pretrain

B = 8
MEAN, STD = [0.5] * B, [0.2] * B


def test_stop_gradient_stops_gradients():
    p1, p2, z1, z2 = (torch.randn(4, 16, requires_grad=True) for _ in range(4))
    simsiam_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None  # targets get nothing
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_byol_target_is_an_ema_and_gets_no_gradient():
    torch.manual_seed(0)
    obj = BYOLObjective(build_encoder("s3r_resnet18", B), MEAN, STD, momentum=0.9)
    before = [p.clone() for p in obj.target_encoder.parameters()]
    with torch.no_grad():
        for p in obj.encoder.parameters():
            p.add_(1.0)
    obj.after_step()
    for t_old, t_new, online in zip(before, obj.target_encoder.parameters(), obj.encoder.parameters()):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * online)
    obj(torch.rand(4, B, 32, 32))["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in obj.target_encoder.parameters())
    assert obj.encoder.conv1.weight.grad is not None


def test_a_full_scale_view_is_one_of_the_eight_flips_and_rotations_and_all_eight_are_drawn():
    """The siamese views' geometry: at area fraction 1 and aspect 1 a view is the crop itself, flipped and rotated
    (exactly, pixel for pixel); the 8 symmetries of the square all occur."""
    torch.manual_seed(0)
    x = torch.rand(256, 3, 8, 8)
    theta = affine_views(256, 8, 8, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    grid = torch.nn.functional.affine_grid(theta, [256, 3, 8, 8], align_corners=False)
    v = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    symmetries = [lambda t, k=k, f=f: torch.rot90(t.flip(-1) if f else t, k, dims=(-2, -1))
                  for k in range(4) for f in (False, True)]
    seen = set()
    for i in range(256):
        match = [j for j, s in enumerate(symmetries) if torch.allclose(v[i], s(x[i]), atol=1e-5)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(range(8))


def test_a_view_crops_within_the_input_and_draws_on_the_batch_device():
    """A crop of area fraction 1/4 of a ramp image only holds values of the ramp's range, shrunk; jitter and
    noise off, a constant band stays constant; the view keeps shape and dtype."""
    torch.manual_seed(1)
    ramp = torch.linspace(0, 1, 32).expand(32, 32)
    x = torch.stack([ramp, torch.full((32, 32), 0.7)])[None].repeat(64, 1, 1, 1)
    v = random_view(x, scale=(0.25, 0.25), jitter=0.0, noise_std=0.0)
    assert v.shape == x.shape and v.dtype == x.dtype
    torch.testing.assert_close(v[:, 1], torch.full((64, 32, 32), 0.7))
    spread = v[:, 0].amax(dim=(1, 2)) - v[:, 0].amin(dim=(1, 2))  # a half-width crop of the ramp
    assert (spread > 0.35).all() and (spread < 0.7).all()
    assert random_view(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_views_and_bands_of_a_process_are_its_slice_of_the_global_batch_draws():
    """Under torchrun each process augments its block of the global batch as one process would: the views
    and band picks drawn with ``part`` = (global size, slice) are that slice of the one-process draws."""
    x = torch.rand(6, B, 16, 16)
    torch.manual_seed(3)
    full_v, full_b = random_view(x), pick_bands(x, 3)
    for mine in (slice(0, 3), slice(3, 6)):
        torch.manual_seed(3)
        part = (6, mine)
        torch.testing.assert_close(random_view(x[mine], part=part), full_v[mine], atol=1e-6, rtol=0)
        assert torch.equal(pick_bands(x[mine], 3, part), full_b[mine])


def test_three_band_sampling_picks_three_distinct_bands():
    x = torch.arange(B, dtype=torch.float32).view(1, B, 1, 1).expand(64, B, 2, 2)
    sub = pick_bands(x, 3)
    idx = sub[:, :, 0, 0]
    assert sub.shape == (64, 3, 2, 2)
    assert all(len(set(row.tolist())) == 3 and row.tolist() == sorted(row.tolist()) for row in idx)
    assert len({tuple(r.tolist()) for r in idx}) > 1  # varies between samples
    with pytest.raises(ValueError, match="--bands 9: the data has only 8 bands"):
        pick_bands(x, 9)


def test_mhsim_loss_only_on_masked_pixels():
    pred, target = torch.zeros(2, B, 8, 8), torch.ones(2, B, 8, 8)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True
    base = masked_l1(pred, target, mask)
    target2 = target.clone()
    target2[:, :, 4:] = 100.0  # change only unmasked pixels
    assert masked_l1(pred, target2, mask) == base == 1.0


def test_three_band_encoder_shape_check():
    with pytest.raises(ValueError, match="encoder takes 8 bands, the data has 8 .objective feeds it 3."):
        SimSiamObjective(build_encoder("s3r_resnet18", B), MEAN, STD, bands=3)


@pytest.mark.parametrize("objective, bands", [("simsiam", 3), ("simsiam", None), ("byol", 3), ("byol", None),
                                              ("mhsim", None), ("convdeconv", None), ("ssad", None)])
def test_each_baseline_trains_exports_and_loads(tmp_path, objective, bands):
    s = run_pretrain(PretrainSpec(data="synthetic:pdac_like", out=str(tmp_path), objective=objective, bands=bands,
                                  epochs=3, batch_size=4, crop=32, synthetic_n=8, mask_patch=8, lr=1e-3))
    losses = [h["loss"] for h in s["history"]]
    assert all(torch.isfinite(torch.tensor(losses)))
    info = s3r_zoo.read_checkpoint_info(s["checkpoint"])
    assert info.objective == objective + ("_3bands" if bands else "")
    assert info.in_chans == (bands or 40) and (info.wavelengths_nm is None) == (bands is not None)
    model = timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=s["checkpoint"]),
                              in_chans=40, num_classes=2)  # any downstream band count
    assert model.eval()(torch.rand(1, 40, 32, 32)).shape == (1, 2)


@pytest.mark.parametrize("objective", ["simsiam", "byol", "mhsim", "convdeconv", "ssad"])
def test_loss_falls_on_a_fixed_batch(objective):
    """A few optimiser steps on one batch, the loss measured with the same random views/masks."""
    from s3r_zoo.pretrain.run import make_pretrain_objective
    from s3r_zoo.data.stats import BandStats

    torch.manual_seed(0)
    spec = PretrainSpec(objective=objective, model="s3r_resnet18", mask_patch=8)
    obj = make_pretrain_objective(spec, BandStats(tuple(MEAN), tuple(STD), 2))
    x = torch.rand(8, B, 32, 32)
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=1e-3)

    def probe():
        torch.manual_seed(7)
        with torch.no_grad():
            return float(obj(x)["loss"])

    start = probe()
    for i in range(15):
        torch.manual_seed(7)  # the same views / masks as the probe: the loss on them must fall
        loss = obj(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(obj, "after_step"):
            obj.after_step()
    assert probe() < start, (start, probe())


def test_bands_only_for_siamese(tmp_path):
    with pytest.raises(ValueError, match="--bands 3: only simsiam and byol take a band subset, not cr"):
        run_pretrain(PretrainSpec(data="synthetic:pdac_like", out=str(tmp_path), objective="cr", bands=3,
                                  epochs=1, crop=32, synthetic_n=4))
