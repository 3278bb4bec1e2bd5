"""Progress output: a live bar on a terminal, a few whole lines in a log file."""

import io
import sys

from s3r_zoo import progress as progress_mod
from s3r_zoo.progress import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_whole_lines_not_carriage_returns():
    log = io.StringIO()  # not a terminal, like `> run.log`
    bar = progress(range(2000), file=log, desc="epoch 1/1", unit="step")
    for i in bar:
        bar.set_postfix(loss=f"{1 / (i + 1):.4f}", refresh=False)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3  # first state and last state (the run is shorter than LOG_INTERVAL_S)
    assert lines[-1].startswith("epoch 1/1: 100% 2000/2000") and "loss=" in lines[-1]


def test_a_log_gets_a_line_per_interval(monkeypatch):
    monkeypatch.setattr(progress_mod, "LOG_INTERVAL_S", 0.0)  # every update is due
    log = io.StringIO()
    for _ in progress(range(5), file=log, desc="x"):
        pass
    lines = log.getvalue().splitlines()
    assert len(lines) >= 5 and all(line.startswith("x:") for line in lines)


def test_a_terminal_gets_the_live_bar():
    term = _Terminal()
    for _ in progress(range(50), file=term, desc="t", mininterval=0):
        pass
    assert "\r" in term.getvalue()


def test_pretrain_log_in_a_file_stays_small(tmp_path, capsys):
    from s3r_zoo.cli import main

    assert not sys.stderr.isatty()
    assert main(["pretrain", "--data", "synthetic:pdac_like", "--synthetic-n", "96", "--crop", "32",
                 "--batch-size", "4", "--epochs", "1", "--mask-patch", "8", "--stats-samples", "4",
                 "--val-crops", "4", "--amp", "none", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    log = captured.err + captured.out
    assert "\r" not in log and "epoch 1/1: 100% 24/24" in log
    assert len(log.encode()) < 2048, log  # one epoch of 24 steps (a line per step would be ~3.5 KB)
