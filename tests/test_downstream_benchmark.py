"""Tests of benchmarks/downstream.py, the downstream tasks."""

import numpy as np
import pytest
from benchmark_scripts import load
from scipy.stats import ttest_rel

downstream = load("downstream")


@pytest.mark.parametrize(
    "sodeep, baseline, word",
    [
        ([0.70, 0.72, 0.71, 0.69], [0.60, 0.61, 0.62, 0.60], "beats"),
        ([0.60, 0.61, 0.62, 0.60], [0.70, 0.72, 0.71, 0.69], "loses"),
        ([0.70, 0.60, 0.72, 0.61], [0.65, 0.66, 0.66, 0.65], "ties"),
    ],
)
def test_verdict_is_the_paired_rule(sodeep, baseline, word):
    # "beats" / "loses" when the mean per-seed difference is more than two
    # standard errors from 0: the paired t statistic beyond +-2.
    t = ttest_rel(sodeep, baseline).statistic
    assert (t > 2, t < -2) == (word == "beats", word == "loses")
    text = downstream.verdict(sodeep, baseline)
    assert text.startswith(word)
    diff = np.subtract(sodeep, baseline)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert f"{diff.mean():+.4f} ± {se:.4f} s.e." in text


def test_one_seed_gives_no_verdict():
    assert downstream.verdict([0.7], [0.6]).startswith("one seed, no verdict")


@pytest.mark.slow
def test_quick_regression_run_writes_every_row(tmp_path):
    out = tmp_path / "downstream.md"
    argv = ["--quick", "--tasks", "regression", "--output", str(out)]
    assert downstream.main(argv) == 0
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in out.read_text().splitlines()
        if line.startswith("| Spearman regression")
    ]
    losses = {(r[2], r[3]) for r in rows}
    assert ("MSE", "-") in losses
    assert any(r[2] == "SpearmanLoss" and "default" in r[3] for r in rows)
    for r in rows:
        value = float(r[5].split("±")[0])
        assert -1.0 <= value <= 1.0
    assert "one seed, no verdict" in out.read_text()
