import numpy as np
import pytest
import torch

from s3r_zoo.spectral import (index_positions, interpolation_matrix, resample_conv_weight, resample_vector,
                              validate_wavelengths)


def test_rows_sum_to_one_and_exact_at_source_positions():
    src = np.array([400.0, 410.0, 430.0, 470.0])
    m, clamped = interpolation_matrix(src, src)
    assert clamped == 0
    np.testing.assert_allclose(m, np.eye(4), atol=1e-12)
    m, _ = interpolation_matrix(src, [405.0, 420.0, 450.0, 469.0])
    np.testing.assert_allclose(m.sum(1), 1.0)


def test_linear_in_wavelength_is_reproduced_exactly():
    src = np.linspace(380, 780, 41)
    tgt = np.linspace(450, 750, 40)
    m, clamped = interpolation_matrix(src, tgt)
    assert clamped == 0
    a, b = 0.3, -2e-3
    np.testing.assert_allclose(m @ (a + b * src), a + b * tgt, rtol=0, atol=1e-12)


def test_conv_weight_linear_in_wavelength_reproduced_with_scale():
    src = np.linspace(380, 780, 41)
    tgt = np.array([451.0, 500.5, 612.25, 777.0])
    slope = torch.randn(8, 1, 3, 3, dtype=torch.float64)
    offset = torch.randn(8, 1, 3, 3, dtype=torch.float64)
    w = offset + slope * torch.as_tensor(src).view(1, -1, 1, 1)  # (8, 41, 3, 3), linear in wavelength
    m, _ = interpolation_matrix(src, tgt)
    out = resample_conv_weight(w, m, scale=True)
    expected = (offset + slope * torch.as_tensor(tgt).view(1, -1, 1, 1)) * (41 / 4)
    assert out.shape == (8, 4, 3, 3)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-9)
    unscaled = resample_conv_weight(w, m, scale=False)
    torch.testing.assert_close(out, unscaled * (41 / 4))


def test_same_positions_is_identity_for_weights():
    src = np.linspace(380, 780, 41)
    m, _ = interpolation_matrix(src, src)
    w = torch.randn(4, 41, 7, 7)
    torch.testing.assert_close(resample_conv_weight(w, m), w)


def test_targets_outside_range_are_clamped_and_counted():
    m, clamped = interpolation_matrix([500.0, 600.0], [400.0, 550.0, 700.0])
    assert clamped == 2
    np.testing.assert_allclose(m, [[1, 0], [0.5, 0.5], [0, 1]])


def test_index_positions_are_band_centres():
    np.testing.assert_allclose(index_positions(4), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(index_positions(1), [0.5])
    with pytest.raises(ValueError, match="num_bands"):
        index_positions(0)


def test_single_source_band_broadcasts():
    m, _ = interpolation_matrix([550.0], [500.0, 550.0, 600.0])
    np.testing.assert_allclose(m, np.ones((3, 1)))


def test_resample_vector_checks_length():
    m, _ = interpolation_matrix([1.0, 2.0], [1.5])
    assert resample_vector([2.0, 4.0], m) == (3.0,)
    with pytest.raises(ValueError, match="expected length 2, found shape"):
        resample_vector([1.0, 2.0, 3.0], m)


def test_fp16_weights_keep_dtype():
    m, _ = interpolation_matrix(np.arange(5.0), np.array([0.5, 3.5]))
    out = resample_conv_weight(torch.randn(2, 5, 3, 3).half(), m)
    assert out.dtype == torch.float16 and out.shape == (2, 2, 3, 3)


def test_resample_conv_weight_checks_channels():
    m, _ = interpolation_matrix(np.arange(5.0), np.arange(3.0))
    with pytest.raises(ValueError, match="expected 5 input channels"):
        resample_conv_weight(torch.randn(2, 4, 3, 3), m)


@pytest.mark.parametrize("bad, match", [
    ([450.0, 450.0, 460.0], "strictly increasing.*450 then 450"),
    ([450.0, 440.0], "strictly increasing"),
    ([450.0, float("nan")], "finite"),
    ([450.0, float("inf")], "finite"),
    ([], "non-empty"),
    ([[1.0, 2.0]], "1-D"),
    (["a", "b"], "band centres"),
])
def test_validate_wavelengths_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_wavelengths(bad)


def test_validate_wavelengths_length():
    with pytest.raises(ValueError, match="expected 3 band centres.*found 2"):
        validate_wavelengths([1.0, 2.0], expected_len=3)
