import pytest
import torch

from s3r_zoo.data import HSIAugment
from s3r_zoo.data.transforms import gaussian_noise, random_resized_crop, rotate


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


def test_rotate_90_equals_rot90():
    x = torch.rand(3, 16, 16)
    torch.testing.assert_close(rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_full_scale_crop_is_identity():
    x = torch.rand(5, 12, 12)
    torch.testing.assert_close(random_resized_crop(x, gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0)), x)


def test_noise_statistics():
    x = torch.zeros(10, 64, 64)
    n = gaussian_noise(x, gen(), std=0.1)
    assert n.std().item() == pytest.approx(0.1, rel=0.05) and abs(n.mean().item()) < 0.01


def test_disabled_steps_do_nothing():
    x = torch.rand(4, 8, 8)
    assert torch.equal(HSIAugment(scale=None, rot90=False, max_degrees=0, flips=False, noise_std=0)(x, gen()), x)
