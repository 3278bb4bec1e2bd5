import pytest
import torch

from s3r_zoo.data import HSIAugment
from s3r_zoo.data.transforms import affine_views


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_augment_is_deterministic_under_a_seed_and_keeps_shape():
    x = torch.rand(40, 32, 32)
    aug = HSIAugment(max_degrees=30, noise_std=0.05)
    a, b = aug(x, gen(1)), aug(x, gen(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, aug(x, gen(2)))


def test_batched_and_any_band_count():
    for bands in (1, 3, 100):
        assert HSIAugment()(torch.rand(2, bands, 16, 16), gen()).shape == (2, bands, 16, 16)


def test_each_sample_of_a_batch_gets_its_own_draws():
    x = torch.rand(1, 4, 16, 16).expand(6, -1, -1, -1)
    out = HSIAugment(noise_std=0)(x, gen(3))
    assert len({tuple(o.flatten()[:8].tolist()) for o in out}) > 1


def test_without_a_generator_the_draws_come_from_the_devices_seeded_rng():
    x = torch.rand(3, 4, 16, 16)
    aug = HSIAugment(max_degrees=15)
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    assert torch.equal(a, aug(x))


def test_a_process_part_of_the_global_batch_is_augmented_as_one_process_would():
    x = torch.rand(8, 4, 16, 16)
    aug = HSIAugment(max_degrees=15)
    torch.manual_seed(1)
    whole = aug(x)
    torch.manual_seed(1)
    torch.testing.assert_close(aug(x[4:], part=(8, slice(4, 8))), whole[4:])


def test_full_scale_crop_without_rotation_or_flip_is_the_identity_map():
    theta = affine_views(5, 12, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0), rot90=False, flips=False, generator=gen())
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(5, 2, 3))


def test_rotations_are_proper_and_within_the_angle():
    theta = affine_views(200, 16, 16, scale=None, rot90=False, flips=False, max_degrees=20, generator=gen())
    r = theta[:, :, :2]
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(200))
    angles = torch.rad2deg(torch.atan2(r[:, 1, 0], r[:, 0, 0]))
    assert angles.abs().max() <= 20 + 1e-4 and angles.abs().max() > 15 and theta[:, :, 2].abs().max() < 1e-6


def test_rot90_and_flips_are_exact_symmetries():
    x = torch.rand(16, 3, 8, 8)
    out = HSIAugment(scale=None, noise_std=0)(x, gen(2))
    for o, xi in zip(out, x):  # each output is one of the 8 symmetries of its input, to rounding
        assert any(torch.allclose(o, torch.rot90(f, k, dims=(-2, -1)), atol=1e-5)
                   for f in (xi, xi.flip(-1)) for k in range(4))


def test_noise_statistics():
    x = torch.zeros(10, 64, 64)
    n = HSIAugment(scale=None, rot90=False, flips=False, noise_std=0.1)(x, gen())
    assert n.std().item() == pytest.approx(0.1, rel=0.05) and abs(n.mean().item()) < 0.01


def test_disabled_steps_do_nothing():
    x = torch.rand(4, 8, 8)
    assert torch.equal(HSIAugment(scale=None, rot90=False, max_degrees=0, flips=False, noise_std=0)(x, gen()), x)
