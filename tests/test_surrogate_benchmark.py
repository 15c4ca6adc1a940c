"""Tests of benchmarks/surrogate.py, the surrogate-quality benchmark."""

import contextlib
import io
import re

import keras
import numpy as np
import pytest
from benchmark_scripts import load
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score
from sklearn.neighbors import NearestNeighbors

from keras_sodeep.ranking import NeuralSortRanker, SigmoidRanker

surrogate = load("surrogate")


class FixedSorter(keras.Model):
    """Stands in for a fixed-length preset; never called off its length."""

    seq_len = 16


def test_spearman_per_list_matches_scipy(rng):
    y = rng.normal(size=(6, 9))
    x = rng.integers(0, 4, size=(6, 9)).astype("float64")  # ties
    x[0] = 3.0  # a constant row: rho 0 (scipy: NaN)
    got = surrogate.spearman_per_list(y, x)
    for row in range(1, 6):
        assert got[row] == pytest.approx(spearmanr(x[row], y[row])[0])
    assert got[0] == 0.0


def test_average_precision_per_list_matches_sklearn(rng):
    labels = (rng.random((20, 12)) < 0.3).astype("float32")
    labels[:, 0] = 1.0
    scores = rng.integers(0, 5, size=(20, 12)).astype("float32")  # ties
    scores[:10] = rng.normal(size=(10, 12))
    got = surrogate.average_precision_per_list(labels, scores)
    expected = [average_precision_score(t, s) for t, s in zip(labels, scores)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isnan(surrogate.average_precision_per_list([[0, 0]], [[1, 2]]))


def test_recall_at_1_matches_nearest_neighbours(rng):
    embeddings = rng.normal(size=(40, 5))
    labels = rng.integers(0, 6, size=40)
    nn = NearestNeighbors(n_neighbors=2, metric="cosine").fit(embeddings)
    _, idx = nn.kneighbors(embeddings)
    hits = labels[idx[:, 1]] == labels
    has_positive = np.array([(labels == v).sum() > 1 for v in labels])
    expected = hits[has_positive].mean()
    assert surrogate.recall_at_1(embeddings, labels) == pytest.approx(expected)
    # Ties at the top count fractionally; a query without positive is out.
    tied = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert surrogate.recall_at_1(tied, [0, 0, 1, 2]) == pytest.approx(0.5)


def test_tiny_run_records_and_skips():
    records = surrogate.run_benchmark(
        [
            SigmoidRanker(0.1),
            SigmoidRanker(0.1, relative=True),
            (NeuralSortRanker(1.0), 4),
            FixedSorter(),
            "default",
        ],
        sizes=(8,),
        targets=("paper", "cauchy"),
        seeds=1,
        steps=5,
    )
    # spearman: 2 targets x 3 scales; map and ndcg: 3 scales each;
    # recall: scale 1 only.
    assert len(records) == 5 * (6 + 3 + 3 + 1)
    assert {r["case"] for r in records} == {"spearman", "map", "ndcg", "recall"}
    for r in records:
        if r["ranker"] in ("neuralsort 1", "FixedSorter"):
            assert r["skipped"] and r["mean"] is None
            continue
        assert r["skipped"] is None and len(r["values"]) == 1
        low = -1.0 if r["case"] == "spearman" else 0.0
        assert low <= r["mean"] <= 1.0 and r["std"] == 0.0
    reasons = {r["ranker"]: r["skipped"] for r in records}
    assert reasons["neuralsort 1"] == "run up to n = 4"
    assert reasons["FixedSorter"] == "fixed length 16"
    # The scale-free ranker reaches the same figure at every scale.
    rel = [
        r["mean"]
        for r in records
        if r["ranker"] == "rel sigmoid 0.1" and r["case"] == "spearman"
    ]
    np.testing.assert_allclose(rel[:3], rel[0], atol=1e-6)
    best = surrogate.best_analytic(records)
    assert set(best) == {
        (r["case"], r["targets"], r["n"], r["scale"]) for r in records
    }
    table = surrogate.surrogate_table(records)
    assert "| targets | n | scale | sigmoid 0.1 | rel sigmoid 0.1 |" in table
    assert "skipped" in table and "best analytic" in table


def test_seeds_batched_equal_separate_runs():
    kwargs = dict(
        rankers=[SigmoidRanker(0.3)],
        cases=("spearman", "recall"),
        sizes=(8,),
        scales=(1.0,),
        targets=("paper",),
        steps=5,
    )
    both = surrogate.run_benchmark(seeds=2, **kwargs)
    first = surrogate.run_benchmark(seeds=1, seed=0, **kwargs)
    second = surrogate.run_benchmark(seeds=1, seed=1, **kwargs)
    for b, f, s in zip(both, first, second):
        np.testing.assert_allclose(
            b["values"], f["values"] + s["values"], atol=1e-6
        )


def test_script_writes_the_report(tmp_path):
    out = tmp_path / "surrogate.md"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = surrogate.main(
            [
                "--quick",
                "--sizes",
                "8",
                "--steps",
                "3",
                "--seeds",
                "1",
                "--cases",
                "map",
                "--rankers",
                "sigmoid:0.1,neuralsort:1.0",
                "--output",
                str(out),
                "--quiet",
            ]
        )
    assert code == 0
    text = out.read_text()
    assert text == stdout.getvalue().rstrip("\n") + "\n"
    assert "| n | scale | sigmoid 0.1 | neuralsort 1 | best analytic |" in text
    assert (
        "Command: `python benchmarks/surrogate.py --quick --sizes 8 "
        "--scales" not in text
    )
    assert (
        "Command: `python benchmarks/surrogate.py --quick --sizes 8 --cases "
        "map --rankers sigmoid:0.1,neuralsort:1.0 --seeds 1 --steps 3`"
    ) in text
    assert "Machine: " in text


def test_script_refuses_bad_options(capsys):
    for argv in (["--sizes", "-1"], ["--sizes", "0"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            surrogate.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert re.search(
            r"error: argument --\w+: .*should be (a )?positive", err
        )


def test_default_set_has_the_scale_free_sigmoid_spec():
    rankers = surrogate.default_rankers()
    assert "sigmoid:0.3:relative" in rankers
    sigmoids = [r for r in rankers if str(r).startswith("sigmoid")]
    labels = [e["label"] for e in surrogate._entries(sigmoids)]
    assert "rel sigmoid 0.3" in labels and "sigmoid 0.1" in labels
