"""Release -> export -> `s3r-zoo push` -> download, against a real HTTP hub on 127.0.0.1.

The server (tests/hub_server.py) speaks the hub's protocol; huggingface_hub, timm and
s3r_zoo talk to it over HTTP exactly as they would to huggingface.co. Nothing in the
download path is monkeypatched: the `online` fixture only does what HF_ENDPOINT /
HF_HUB_OFFLINE / HF_HOME do for a fresh process (huggingface_hub reads them at import,
and conftest.py imported it offline), and one test runs a fresh process with the
environment variables alone, without importing s3r_zoo.
"""

import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from conftest import VALIDATION, make_checkpoint, set_records
from hub_server import HubServer

from s3r_zoo import WeightsIntegrityError, load_checkpoint
from s3r_zoo.cli import main
from s3r_zoo.release import release_checkpoint

TOKEN = "hf_test_write_token"
TARGET_WL = [450 + i * 300 / 39 for i in range(40)]


@pytest.fixture(scope="module")
def hub():
    try:
        server = HubServer(token=TOKEN).start()
    except OSError as e:
        pytest.skip(f"cannot bind a port on 127.0.0.1 for the test hub: {e}")
    yield server
    server.stop()


@pytest.fixture
def online(hub, monkeypatch, tmp_path):
    """What HF_ENDPOINT=<hub>, HF_HUB_OFFLINE=0 and a fresh HF_HOME give a new process."""
    from huggingface_hub import constants

    for name, value in {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf_home")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    return tmp_path / "hf_home" / "hub"


def _release(tmp_path, monkeypatch, tag, seed):
    """A released random encoder: (hub folder, what was recorded, state dict); its record is live."""
    ckpt = tmp_path / f"run_{tag}" / "encoder.safetensors"
    make_checkpoint(ckpt, seed=seed, extra={"final_loss": 0.5, "hardware": "cpu: test", "wall_time_s": 1.0,
                                            "validation": VALIDATION})
    entry = release_checkpoint(ckpt.parent, tag, weights_dir=tmp_path / "released", hub_dir=tmp_path / f"hub_{tag}")
    # the record (conftest's copy of releases.json) now holds the file's sha256; the repository's
    # weights/ (conftest points it at tmp_path/repo_weights) is empty, so create_model goes to the hub
    set_records(monkeypatch)
    return tmp_path / f"hub_{tag}", entry, load_checkpoint(entry["path"])[0]


def _push(folder, repo, capsys=None):
    rc = main(["push", str(folder), "--repo", repo])
    return rc, (capsys.readouterr() if capsys else None)


def test_push_download_cache_offline(tmp_path, hub, online, monkeypatch, capsys):
    folder, entry, sd = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=3)
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # a standard place for the token
    rc, out = _push(folder, "s3r-zoo/s3r_resnet18.cr_hims41_v2", capsys)
    assert rc == 0, out.err
    assert "pushed" in out.out
    assert hub.file("s3r-zoo/s3r_resnet18.cr_hims41_v2", "model.safetensors") == (folder / "model.safetensors").read_bytes()

    m = timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True, in_chans=40, wavelengths=TARGET_WL)
    assert hub.count("GET", "s3r_resnet18.cr_hims41_v2/resolve/main/model.safetensors") == 1
    assert torch.equal(m.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"].float())
    assert m.conv1.weight.shape[1] == 40
    assert m.pretrained_cfg["input_size"][0] == 40

    # cache reuse: the second load asks for metadata only
    timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True)
    assert hub.count("GET", "s3r_resnet18.cr_hims41_v2/resolve/main/model.safetensors") == 1

    # offline: the cache alone, not a single request
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    m2 = timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True, in_chans=40, wavelengths=TARGET_WL)
    assert len(hub.requests) == before
    assert torch.equal(m2.conv1.weight, m.conv1.weight)


def test_corrupt_cached_file_is_downloaded_again(tmp_path, hub, online, monkeypatch):
    folder, entry, sd = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=4)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _push(folder, "s3r-zoo/s3r_resnet18.cr_hims41_v2")[0] == 0
    timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True)
    gets = hub.count("GET", "s3r_resnet18.cr_hims41_v2/resolve/main/model.safetensors")
    blobs = list((online / "models--s3r-zoo--s3r_resnet18.cr_hims41_v2" / "blobs").iterdir())
    blob = max(blobs, key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # a partial file in the cache

    m = timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True)
    assert hub.count("GET", "s3r_resnet18.cr_hims41_v2/resolve/main/model.safetensors") == gets + 1
    assert torch.equal(m.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"].float())
    assert blob.stat().st_size == entry["file"]["size"]


def test_corrupt_file_on_the_hub_is_a_clear_error(tmp_path, hub, online, monkeypatch):
    folder, entry, _ = _release(tmp_path, monkeypatch, "br_hims41_v2", seed=5)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _push(folder, "s3r-zoo/s3r_resnet18.br_hims41_v2")[0] == 0
    data = (folder / "model.safetensors").read_bytes()
    hub.replace_file("s3r-zoo/s3r_resnet18.br_hims41_v2", "model.safetensors", data[:-1000] + bytes(1000))
    with pytest.raises(WeightsIntegrityError, match="corrupt or partial") as e:
        timm.create_model("s3r_resnet18.br_hims41_v2", pretrained=True)
    assert "release record" in str(e.value) and "fresh download" in str(e.value)


def test_push_without_token_is_refused_with_a_hint(tmp_path, hub, online, monkeypatch, capsys):
    folder, _, _ = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=6)
    rc, out = _push(folder, "s3r-zoo/no-token", capsys)
    assert rc == 2
    assert "401" in out.err and "hf auth login" in out.err and "HF_TOKEN" in out.err
    assert "s3r-zoo/no-token" not in hub.repos


def test_push_uses_the_saved_login_token(tmp_path, hub, online, monkeypatch, capsys):
    from huggingface_hub import constants

    folder, _, _ = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=7)
    os.makedirs(os.path.dirname(constants.HF_TOKEN_PATH), exist_ok=True)
    with open(constants.HF_TOKEN_PATH, "w") as f:  # where `hf auth login` saves it
        f.write(TOKEN)
    rc, out = _push(folder, "someone/saved-login", capsys)
    assert rc == 0, out.err
    assert hub.repos["someone/saved-login"].commits[-1][1]["config.json"] == (folder / "config.json").read_bytes()


def test_push_twice_is_a_new_commit_on_the_same_repo(tmp_path, hub, online, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder, _, _ = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=8)
    assert _push(folder, "someone/twice")[0] == 0
    n = len(hub.repos["someone/twice"].commits)
    folder2, _, _ = _release(tmp_path / "again", monkeypatch, "cr_hims41_v2", seed=9)
    assert _push(folder2, "someone/twice")[0] == 0
    assert len(hub.repos["someone/twice"].commits) == n + 1
    assert hub.file("someone/twice", "model.safetensors") == (folder2 / "model.safetensors").read_bytes()


def test_push_checks_the_folder(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert main(["push", str(tmp_path / "half"), "--repo", "a/b"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "README.md" in err and "s3r-zoo export" in err


def test_plain_timm_hf_hub_in_a_fresh_process(tmp_path, hub, online, monkeypatch):
    """Only environment variables, and s3r_zoo never imported: what a timm user does."""
    folder, _, sd = _release(tmp_path, monkeypatch, "cr_hims41_v2", seed=10)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _push(folder, "someone/plain-timm")[0] == 0
    code = (
        "import sys, json, timm, torch\n"
        "m = timm.create_model('hf-hub:someone/plain-timm', pretrained=True)\n"
        "assert 's3r_zoo' not in sys.modules\n"
        "x = torch.rand(1, 41, 64, 64)\n"
        "print(json.dumps({'in': m.conv1.weight.shape[1], 'features': m(x).shape[1],\n"
        "                  's': float(m.layer4[1].conv2.weight.double().sum()),\n"
        "                  'mean0': m.pretrained_cfg['mean'][0], 'arch': m.pretrained_cfg['architecture']}))\n")
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "fresh_home"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["in"] == 41 and got["features"] == 512 and got["arch"] == "resnet18"
    assert got["s"] == pytest.approx(float(sd["layer4.1.conv2.weight"].double().sum()), rel=1e-6)
    assert got["mean0"] == pytest.approx(0.8405)


def test_embed_from_an_hf_hub_id(tmp_path, hub, online, monkeypatch):
    """`s3r-zoo embed --init hf-hub:ORG/NAME` downloads the exported model.safetensors and adapts it by wavelength."""
    import numpy as np

    make_checkpoint(tmp_path / "enc.safetensors", seed=4)
    assert main(["export", str(tmp_path / "enc.safetensors"), "--out", str(tmp_path / "hubdir")]) == 0
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _push(tmp_path / "hubdir", "lab/s3r-enc")[0] == 0
    (tmp_path / "scans").mkdir()
    np.save(tmp_path / "scans" / "a.npy", np.random.default_rng(0).random((32, 32, 40), dtype=np.float32))
    np.savetxt(tmp_path / "scans" / "wavelengths_nm.txt", TARGET_WL)
    assert main(["embed", str(tmp_path / "scans"), "--init", "hf-hub:lab/s3r-enc", "--out", str(tmp_path / "e"),
                 "--amp", "none"]) == 0
    assert np.load(tmp_path / "e" / "features.npy").shape == (1, 512)
    assert main(["embed", str(tmp_path / "scans"), "--init", "hf-hub:lab/missing", "--out", str(tmp_path / "m")]) == 2
