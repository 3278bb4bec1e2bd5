"""``s3r-zoo data split``: patient-grouped, class-stratified, seeded split files, and its refusals."""

import json
from collections import Counter

import pytest

from s3r_zoo.cli import main
from s3r_zoo.data.datasets import read_split_file


def _csv(tmp_path, rows, header="path,label,patient"):
    (tmp_path / "scans").mkdir(exist_ok=True)
    for path, *_ in rows:
        (tmp_path / path).touch()
    text = header + "\n" + "".join(",".join(r) + "\n" for r in rows)
    (tmp_path / "labels.csv").write_text(text)
    return tmp_path / "labels.csv"


def _cohort(tmp_path, patients_per_class=(8, 6, 4), scans_per_patient=(1, 2, 3)):
    rows = []
    for c, n in enumerate(patients_per_class):
        for p in range(n):
            for s in range(scans_per_patient[p % len(scans_per_patient)]):
                rows.append((f"scans/c{c}_p{p}_s{s}.npy", f"class{c}", f"P{c}-{p}"))
    return _csv(tmp_path, rows), rows


def _read(path):
    items, names = read_split_file(path)
    return [(p.name, names[lbl]) for p, lbl in items]


def test_split_groups_patients_and_covers_every_class(tmp_path, capsys):
    csv, rows = _cohort(tmp_path)
    patient = {f"{r[0].split('/')[1]}": r[2] for r in rows}
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "s"), "--seed", "3"]) == 0
    splits = {n: _read(tmp_path / "s" / f"{n}.txt") for n in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == len(rows)  # every scan once
    seen = {n: {patient[f] for f, _ in v} for n, v in splits.items()}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])
    for v in splits.values():
        assert set(lbl for _, lbl in v) == {"class0", "class1", "class2"}
    assert len(splits["train"]) > len(splits["val"]) and len(splits["train"]) > len(splits["test"])
    summary = json.loads((tmp_path / "s" / "split_summary.json").read_text())
    assert summary["splits"]["train"]["scans"] == len(splits["train"]) and summary["patients_given"]
    assert summary["splits"]["test"]["patients"] == len(seen["test"])
    assert "patients" in capsys.readouterr().out
    # paths are relative to the split file: nothing of this machine is written
    assert str(tmp_path) not in (tmp_path / "s" / "train.txt").read_text()
    # seeded: the same seed gives the same files, another seed may not
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "t"), "--seed", "3"]) == 0
    assert (tmp_path / "t" / "test.txt").read_text() == (tmp_path / "s" / "test.txt").read_text()


def test_split_shares_follow_the_ratios(tmp_path):
    csv, rows = _cohort(tmp_path, patients_per_class=(30, 30), scans_per_patient=(1,))
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "s"), "--ratios", "0.6", "0.2", "0.2"]) == 0
    counts = {n: Counter(lbl for _, lbl in _read(tmp_path / "s" / f"{n}.txt")) for n in ("train", "val", "test")}
    assert counts["train"] == {"class0": 18, "class1": 18}
    assert counts["val"] == counts["test"] == {"class0": 6, "class1": 6}


def test_k_folds_partition_what_the_test_split_leaves(tmp_path):
    csv, rows = _cohort(tmp_path, patients_per_class=(10, 8), scans_per_patient=(1, 2))
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "f"), "--folds", "3",
                 "--ratios", "0.8", "0", "0.2"]) == 0
    test = {f for f, _ in _read(tmp_path / "f" / "test.txt")}
    vals = [{f for f, _ in _read(tmp_path / "f" / f"fold_{k}" / "val.txt")} for k in range(3)]
    trains = [{f for f, _ in _read(tmp_path / "f" / f"fold_{k}" / "train.txt")} for k in range(3)]
    everything = {r[0].split("/")[1] for r in rows}
    assert set().union(*vals) == everything - test and sum(map(len, vals)) == len(everything - test)
    for k in range(3):
        assert trains[k] == everything - test - vals[k]


def test_class_folders_make_every_scan_its_own_patient(tmp_path, capsys):
    for c in ("benign", "tumour"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(5):
            (tmp_path / "d" / c / f"{i}.npy").touch()
    assert main(["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "s"), "--ratios", "0.6", "0.2",
                 "0.2"]) == 0
    assert "every scan counts as its own patient" in capsys.readouterr().out
    assert Counter(lbl for _, lbl in _read(tmp_path / "s" / "train.txt")) == {"benign": 3, "tumour": 3}


@pytest.mark.parametrize("rows,args,message", [
    ([("scans/a.npy", "x", "P1"), ("scans/b.npy", "x", "P2"), ("scans/c.npy", "x", "P3"),
      ("scans/d.npy", "y", "P4"), ("scans/e.npy", "y", "P4")], [],
     "every class needs a patient in each of the 3 splits/folds, but these classes have fewer patients: 'y' (1)"),
    ([("scans/a.npy", "x", "P1"), ("scans/a.npy", "y", "P2")], [], "scans/a.npy is listed twice (first on line 2)"),
    ([("scans/a.npy", "x", "P1")] * 0 + [("scans/a.npy", "x", "P1"), ("scans/b.npy", "y", "P2")],
     ["--folds", "1"], "--folds: expected 0 (ratios) or at least 2, found 1"),
    ([("scans/a.npy", "x", "P1"), ("scans/b.npy", "y", "P2")], ["--ratios", "0.5", "0.5", "0.5"],
     "--ratios: expected three shares train val test"),
])
def test_impossible_requests_are_refused_in_one_line_and_write_nothing(tmp_path, capsys, rows, args, message):
    csv = _csv(tmp_path, rows)
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_unknown_files_and_bad_headers_are_refused(tmp_path, capsys):
    csv = _csv(tmp_path, [("scans/a.npy", "x", "P1")])
    csv.write_text(csv.read_text() + "scans/ghost.npy,y,P2\n")
    assert main(["data", "split", str(csv), "--out", str(tmp_path / "s")]) == 2
    assert "1 listed files do not exist (line 3: scans/ghost.npy)" in capsys.readouterr().err
    bad = _csv(tmp_path, [("scans/a.npy", "x")], header="file,class")
    assert main(["data", "split", str(bad), "--out", str(tmp_path / "s")]) == 2
    assert "expected the header 'path,label' or 'path,label,patient', found 'file,class'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
