"""Registry, architecture and construction (no pretrained weights)."""

import logging

import pytest
import timm
import torch

import s3r_zoo


def test_registered_in_timm():
    assert timm.list_models("s3r_*") == ["s3r_resnet18", "s3r_resnet50"]
    assert timm.list_pretrained("s3r_*") == [
        "s3r_resnet18.br_hims41_v2", "s3r_resnet18.cr_hims41_v2", "s3r_resnet18.local_hims41_v3",
        "s3r_resnet50.br_hims41_v2", "s3r_resnet50.cr_hims41_v2"]
    # our models stay out of timm's own 'resnet' module listing
    assert not [m for m in timm.list_models(module="resnet") if m.startswith("s3r")]


def test_default_tag_and_cfg():
    m = timm.create_model("s3r_resnet18")
    cfg = m.pretrained_cfg
    assert cfg["tag"] == "cr_hims41_v2" and cfg["hf_hub_id"] == "s3r-zoo/s3r_resnet18.cr_hims41_v2"
    assert cfg["input_size"][0] == 41 == len(cfg["mean"]) == len(cfg["std"])
    assert m.num_classes == 0 and m.conv1.in_channels == 41  # headless encoder at the checkpoint's bands


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_state_dict_keys_and_shapes_equal_timm(arch):
    ours = timm.create_model(f"s3r_{arch}", in_chans=40, num_classes=10).state_dict()
    theirs = timm.create_model(arch, in_chans=40, num_classes=10).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    # a state dict moves between the two unchanged
    timm.create_model(arch, in_chans=40, num_classes=10).load_state_dict(ours)


@pytest.mark.parametrize("bands", [1, 3, 32, 40, 41, 100])
def test_forward_any_band_count(bands):
    m = timm.create_model("s3r_resnet50", in_chans=bands, num_classes=0).eval()
    with torch.no_grad():
        out = m(torch.randn(2, bands, 32, 32))
    assert out.shape == (2, 2048)
    assert m.pretrained_cfg["input_size"][0] == bands
    assert len(m.pretrained_cfg["mean"]) == len(m.pretrained_cfg["std"]) == bands
    assert s3r_zoo.band_info(m).in_chans == bands


def test_wavelengths_alone_set_band_count():
    wl = [450 + 10 * i for i in range(31)]
    m = timm.create_model("s3r_resnet18", wavelengths=wl)
    assert m.conv1.in_channels == 31
    info = s3r_zoo.band_info(m)
    assert info.wavelengths_nm == tuple(float(w) for w in wl)
    # mean/std follow the hims41 table at those wavelengths (450 nm is table band 7)
    assert info.mean[0] == pytest.approx(s3r_zoo.band_info(timm.create_model("s3r_resnet18")).mean[7])


def test_features_only():
    m = timm.create_model("s3r_resnet18", in_chans=40, features_only=True, out_indices=(1, 2, 3, 4))
    feats = m(torch.randn(1, 40, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert m.feature_info.channels() == [64, 128, 256, 512]


def test_num_classes_and_reset_classifier():
    m = timm.create_model("s3r_resnet18", in_chans=32, num_classes=3)
    assert m(torch.randn(2, 32, 32, 32)).shape == (2, 3)
    m.reset_classifier(5)
    assert m(torch.randn(2, 32, 32, 32)).shape == (2, 5)
    m.reset_classifier(0)
    assert m(torch.randn(2, 32, 32, 32)).shape == (2, 512)


def test_data_config_uses_adapted_mean_std():
    m = timm.create_model("s3r_resnet18", in_chans=32)
    cfg = timm.data.resolve_data_config({}, model=m)
    assert cfg["input_size"] == (32, 224, 224) and len(cfg["mean"]) == 32 and len(cfg["std"]) == 32


def test_band_info_normalize():
    m = timm.create_model("s3r_resnet18", in_chans=3)
    info = s3r_zoo.band_info(m)
    x = torch.tensor(info.mean).view(1, 3, 1, 1) + torch.tensor(info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(info.normalize(x.expand(2, 3, 4, 4)), torch.ones(2, 3, 4, 4))


def test_band_info_of_plain_timm_model():
    info = s3r_zoo.band_info(timm.create_model("resnet18"))
    assert info.wavelengths_nm is None and len(info.mean) == 3


def test_pretrained_false_is_quiet(caplog):
    with caplog.at_level(logging.WARNING):
        timm.create_model("s3r_resnet18", in_chans=17)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(pretrained_cfg="nope"), ValueError,
     r"unknown pretrained tag 'nope'; available: s3r_resnet18.br_hims41_v2, s3r_resnet18.cr_hims41_v2"),
    (dict(in_chans=0), ValueError, r"in_chans: expected an integer >= 1 \(number of bands\), found 0"),
    (dict(in_chans=-3), ValueError, "in_chans: expected an integer >= 1"),
    (dict(in_chans=3, wavelengths=[400.0, 500.0]), ValueError, "wavelengths: expected 3 band centres.*found 2"),
    (dict(in_chans=2, wavelengths=[500.0, 400.0]), ValueError, "strictly increasing"),
    (dict(in_chans=2, wavelengths=[500.0, float("nan")]), ValueError, "finite"),
    (dict(band_adapt="nearest"), ValueError, r"band_adapt: expected one of \('interp', 'repeat'\)"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        timm.create_model("s3r_resnet18", **kwargs)


def test_unknown_tag_through_model_name():
    with pytest.raises(ValueError, match="unknown pretrained tag 'imagenet'; available: s3r_resnet50.br_hims41_v2"):
        timm.create_model("s3r_resnet50.imagenet")


@pytest.mark.parametrize("name", ["s3r_resnet18.cr_hims41", "s3r_resnet50.br_hims41"])
def test_a_retired_tag_names_its_successor(name):
    model, tag = name.split(".")
    with pytest.raises(ValueError, match=rf"{name} was retired: v1 .* Its successor is {model}\.{tag}_v2 \(the "
                                         rf"default of {model}\)"):
        timm.create_model(name, pretrained=True)
    assert timm.create_model(model).pretrained_cfg["tag"] == "cr_hims41_v2"  # the default moved to v2
