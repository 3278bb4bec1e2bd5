"""The README's "your own data" walkthrough, run command by command on generated ENVI, MATLAB and TIFF scans, two
with NaN pixels and one TIFF without wavelengths, behaving as the README says at every step."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
from scipy.io import savemat

from s3r_zoo.cli import main
from s3r_zoo.data.synthetic import simulate_cube

ROOT = Path(__file__).resolve().parent.parent
SMALL = {  # the same commands at test size: later options win in argparse
    "pretrain": ["--epochs", "1", "--crop", "32", "--batch-size", "8", "--crops-per-cube", "2", "--stats-samples", "8",
                 "--val-crops", "4", "--mask-patch", "8"],
    "finetune": ["--epochs", "2", "--batch-size", "8", "--lr", "1e-3"],
    "embed": ["--tile", "16"],
    "evaluate": ["--seeds", "2", "--epochs", "1", "--min-steps", "2", "--batch-size", "8", "--probe-fractions", "0.5",
                 "1", "--finetune-fractions", "1"],
}


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Your own data: from scans to predictions.*?```bash\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("s3r-zoo ")]


def _scans(folder: Path):
    """12 patients x 2 scans of 32 x 32 px, 40 bands, half ENVI and half MATLAB v5; the class follows the patient."""
    from spectral.io import envi

    rows = []
    (folder / "scans").mkdir()
    for patient in range(12):
        label = patient % 2
        for k in range(2):
            cube = simulate_cube("pdac_like", label, 32, seed=100 * patient + k, difficulty=0.0)
            name = f"p{patient:02d}_{k}"
            if (patient + k) % 2:
                envi.save_image(str(folder / "scans" / f"{name}.hdr"), cube.data, ext=".img",
                                metadata={"wavelength": list(cube.wavelengths), "wavelength units": "Nanometers"})
                rows.append(f"scans/{name}.hdr,{'tumour' if label else 'normal'},P{patient}")
            elif patient == 0 and k == 0:  # a lab export: a multi-page TIFF that does not record its bands
                import tifffile

                tifffile.imwrite(folder / "scans" / f"{name}.tif", cube.data.transpose(2, 0, 1))
                rows.append(f"scans/{name}.tif,{'tumour' if label else 'normal'},P{patient}")
            else:
                data = cube.data.copy()
                if patient in (2, 4) and k == 0:  # two scans with a NaN pixel, as the HIMS core has
                    data[3, 5, 7] = np.nan
                savemat(folder / "scans" / f"{name}.mat", {"cube": data, "wavelengths": cube.wavelengths})
                rows.append(f"scans/{name}.mat,{'tumour' if label else 'normal'},P{patient}")
    (folder / "labels.csv").write_text("path,label,patient\n" + "\n".join(rows) + "\n")


def test_readme_walkthrough_end_to_end(tmp_path, monkeypatch, capsys):
    commands = _readme_commands()
    assert [c[0] if c[0] != "data" else f"data {c[1]}" for c in commands] == [
        "data split", "data qc", "pretrain", "finetune", "predict", "embed", "evaluate"]
    _scans(tmp_path)
    monkeypatch.chdir(tmp_path)
    # as the README says: the TIFF without wavelengths is refused among cubes that know theirs, named ...
    check = ["embed", "scans", "--init", "random", "--model", "s3r_resnet18", "--normalize", "data", "--out", "check"]
    assert main(check) == 2 and "p00_0.tif" in capsys.readouterr().err
    np.savetxt("scans/p00_0.wavelengths_nm.txt", simulate_cube("pdac_like", 0, 8).wavelengths)  # ... until this
    assert main(check) == 2  # then the NaN pixels stop it, named, until --nan repairs them
    assert "NaN/Inf" in capsys.readouterr().err and not Path("check/features.npy").exists()
    for argv in commands:
        assert main(argv + SMALL.get(argv[0], [])) == 0, argv
    summary = json.loads(Path("splits/split_summary.json").read_text())
    assert sum(s["scans"] for s in summary["splits"].values()) == 24
    assert len(list(Path("qc").glob("*_qc.png"))) == 24 and Path("qc/qc_ranking.csv").is_file()
    finetuned = json.loads(Path("runs/finetune/seed_0/metrics.json").read_text())
    predicted = json.loads(Path("runs/predict/predict.json").read_text())
    assert predicted["accuracy"] == finetuned["accuracy"]
    assert np.load("runs/embed/features.npy").shape == (24 * 4, 512)  # four 16-px windows per 32-px scan
    evaluated = json.loads(Path("runs/evaluate/evaluate.json").read_text())
    assert evaluated["complete"] and set(evaluated["probe"]["1"]) == {"mean_spectrum", "random", "encoder.safetensors"}
    assert set(evaluated["finetune"]["1"]) == {"scratch", "encoder.safetensors"}
