"""Tests of keras_sodeep.synthetic and the sodeep_synthetic TFDS builder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import rankdata

from keras_sodeep.synthetic import (
    GENERATORS,
    HELD_OUT,
    _normalized_ranks,
    evaluation_lists,
    held_out_lists,
    synthetic_dataset,
)


def _batches(ds, count=None):
    items = ds if count is None else ds.take(count)
    return [tf.nest.map_structure(np.asarray, item) for item in items]


def _scipy_normalized_ranks(scores, lengths=None):
    out = np.zeros(scores.shape, dtype="float64")
    for row, x in enumerate(scores):
        m = len(x) if lengths is None else lengths[row]
        out[row, :m] = rankdata(-x[:m], method="average") / m
    return out


def test_shapes_dtypes_and_endless():
    ds = synthetic_dataset(seq_len=12, batch_size=5, seed=1)
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    scores, targets = _batches(ds, 3)[2]
    assert scores.shape == targets.shape == (5, 12)
    assert scores.dtype == targets.dtype == np.float32
    assert np.all(np.isfinite(scores))


def test_num_batches():
    ds = synthetic_dataset(seq_len=4, batch_size=2, seed=0, num_batches=7)
    assert len(_batches(ds)) == 7


def test_targets_match_scipy_rankdata():
    batches = _batches(synthetic_dataset(50, 64, seed=3, num_batches=3))
    for scores, targets in batches:
        np.testing.assert_allclose(
            targets, _scipy_normalized_ranks(scores), atol=1e-6
        )


def test_tie_averaged_ranks_with_mask():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(20, 9)).astype("float32")
    lengths = rng.integers(1, 10, size=20)
    mask = np.arange(9)[None, :] < lengths[:, None]
    got = _normalized_ranks(tf.constant(scores), tf.constant(mask)).numpy()
    np.testing.assert_allclose(
        got, _scipy_normalized_ranks(scores, lengths), atol=1e-6
    )


def test_same_seed_same_batches_other_seed_other_batches():
    first = _batches(synthetic_dataset(20, 8, seed=42), 3)
    again = _batches(synthetic_dataset(20, 8, seed=42), 3)
    other = _batches(synthetic_dataset(20, 8, seed=43), 3)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])
    # Successive batches differ.
    assert not np.array_equal(first[0][0], first[1][0])


def test_random_seed_when_none():
    a = _batches(synthetic_dataset(20, 4), 1)[0][0]
    b = _batches(synthetic_dataset(20, 4), 1)[0][0]
    assert not np.array_equal(a, b)


def test_start_skips_batches():
    full = _batches(synthetic_dataset(10, 4, seed=5, num_batches=6))
    tail = _batches(synthetic_dataset(10, 4, seed=5, num_batches=2, start=4))
    np.testing.assert_array_equal(tail[0][0], full[4][0])
    np.testing.assert_array_equal(tail[1][0], full[5][0])


def test_paper_mix_is_the_list_of_all_generators():
    a = _batches(synthetic_dataset(16, 32, "paper", seed=9), 2)
    b = _batches(synthetic_dataset(16, 32, list(GENERATORS), seed=9), 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
    assert len(GENERATORS) == 10


def _draw(name, n=40, batch=200, seed=0):
    ds = synthetic_dataset(n, batch, [name], seed=seed, num_batches=1)
    return _batches(ds)[0][0].astype("float64")


@pytest.mark.parametrize("name", ["uniform", "uniform_2", "uniform_uniform"])
def test_uniform_generators(name):
    x = _draw(name)
    assert x.min() >= -1.0 and x.max() < 1.0
    assert abs(x.mean()) < 0.05
    assert abs(x.var() - 1.0 / 3.0) < 0.03


def test_normal_generator():
    x = _draw("normal")
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1.0) < 0.05
    assert np.abs(x).max() > 2.5  # Not bounded like the uniform ones.


def _evenly_spaced(row):
    gaps = np.diff(np.sort(row))
    return np.allclose(gaps, gaps.mean(), atol=1e-5)


def test_spaced_generators():
    n = 40
    x = _draw("spaced", n)
    a = x[:, 0]
    step = x[:, 1] - x[:, 0]
    np.testing.assert_allclose(
        x, a[:, None] + step[:, None] * np.arange(n), atol=1e-5
    )
    b = a + step * n
    assert a.min() >= 0 and a.max() < 1 and b.min() >= 0 and b.max() < 1
    assert (step > 0).any() and (step < 0).any()  # Up and down.
    shuffled = _draw("spaced_shuffled", n)
    assert all(_evenly_spaced(row) for row in shuffled)
    assert np.mean([np.all(np.diff(r) > 0) for r in shuffled]) < 0.05
    full = _draw("spaced_full", n, batch=3)
    np.testing.assert_allclose(
        full, np.tile(-1 + 2 * np.arange(n) / n, (3, 1)), atol=1e-6
    )


def test_mixture_generators():
    n = 60
    x = _draw("uniform_normal", n, batch=300)
    # A prefix of uniform items: the first item is always uniform.
    assert np.abs(x[:, 0]).max() < 1.0
    assert np.abs(x[:, -1]).max() > 1.5  # The last item is often normal.
    spaced = _draw("spaced_uniform", n, batch=100)
    for row in spaced:
        # The longest prefix that is evenly spaced is the spaced part.
        split = max(s for s in range(2, n + 1) if _evenly_spaced(row[:s]))
        assert row[:split].min() >= 0 and row[:split].max() < 1
        assert np.abs(row[split:]).max(initial=0) < 1


def test_ranged_lengths_layout():
    ds = synthetic_dataset((3, 9), 64, seed=2, num_batches=4)
    for inputs, targets, weights in _batches(ds):
        scores, mask = inputs["scores"], inputs["mask"]
        assert scores.shape == mask.shape == targets.shape == (64, 9)
        assert mask.dtype == bool and weights.shape == (64,)
        lengths = mask.sum(axis=-1)
        assert lengths.min() >= 3 and lengths.max() <= 9
        # The mask is a prefix; padding is 0 in scores and targets.
        np.testing.assert_array_equal(
            mask, np.arange(9)[None, :] < lengths[:, None]
        )
        assert np.all(scores[~mask] == 0) and np.all(targets[~mask] == 0)
        np.testing.assert_allclose(
            targets, _scipy_normalized_ranks(scores, lengths), atol=1e-6
        )
        np.testing.assert_allclose(weights, 9 / lengths, rtol=1e-6)
    every = np.concatenate([b[0]["mask"].sum(-1) for b in _batches(ds)])
    assert set(every) == set(range(3, 10))


def test_ranged_batches_fit_a_sorter_with_the_mean_over_items():
    from keras_sodeep.sorters import GRUSorter

    keras.utils.set_random_seed(0)
    sorter = GRUSorter(units=4, num_layers=1, context_units=2)
    sorter.compile(optimizer="adam", loss="mae")
    ds = synthetic_dataset((4, 10), 16, seed=0, num_batches=2)
    history = sorter.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    inputs, targets, weights = _batches(ds, 1)[0]
    loss = sorter.evaluate(
        inputs, targets, sample_weight=weights, batch_size=16, verbose=0
    )
    predicted = np.asarray(sorter(inputs["scores"], mask=inputs["mask"]))
    mask = inputs["mask"]
    per_list = [
        np.abs(p[m] - t[m]).mean() for p, t, m in zip(predicted, targets, mask)
    ]
    np.testing.assert_allclose(loss, np.mean(per_list), rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq_len": 0},
        {"seq_len": (5, 3)},
        {"seq_len": 2.5},
        {"batch_size": 0},
        {"distributions": "gaussian"},
        {"distributions": []},
        {"num_batches": 0},
        {"seed": "a"},
        {"start": -1},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="should be"):
        synthetic_dataset(**kwargs)


def test_evaluation_lists_prefix_and_ranks():
    scores, ranks = evaluation_lists(num_lists=1500, seq_len=30)
    assert scores.shape == ranks.shape == (1500, 30)
    np.testing.assert_allclose(
        ranks, _scipy_normalized_ranks(scores), atol=1e-6
    )
    head, _ = evaluation_lists(num_lists=7, seq_len=30)
    np.testing.assert_array_equal(head, scores[:7])
    other, _ = evaluation_lists(num_lists=7, seq_len=30, seed=1)
    assert not np.array_equal(other, head)


def test_held_out_distributions_are_not_in_the_paper_mix():
    assert not set(HELD_OUT) & set(GENERATORS)
    for name in HELD_OUT:
        with pytest.raises(ValueError, match="distributions"):
            synthetic_dataset(distributions=name)


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_targets_determinism_and_prefix(name):
    scores, ranks = held_out_lists(name, num_lists=1100, seq_len=30)
    assert scores.shape == ranks.shape == (1100, 30)
    assert scores.dtype == ranks.dtype == np.float32
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(
        ranks, _scipy_normalized_ranks(scores), atol=1e-6
    )
    again, _ = held_out_lists(name, num_lists=5, seq_len=30)
    np.testing.assert_array_equal(again, scores[:5])
    other, _ = held_out_lists(name, num_lists=5, seq_len=30, seed=7)
    assert not np.array_equal(other, again)
    # The second block of 1,000 lists is new data, not a copy.
    assert not np.array_equal(scores[1000:1005], again)


def _held_out(name, n=100, num_lists=400):
    return held_out_lists(name, num_lists=num_lists, seq_len=n)[0].astype(
        "float64"
    )


def test_held_out_wide_and_cosine():
    wide = _held_out("wide")
    assert abs(wide.mean()) < 0.2 and abs(wide.std() - 8.0) < 0.2
    y = np.arctanh(_held_out("cosine"))
    assert abs(y.mean() - 0.3) < 0.01 and abs(y.std() - 0.2) < 0.01
    assert np.abs(_held_out("cosine")).max() < 1.0


def test_held_out_cauchy_is_heavy_tailed():
    x = _held_out("cauchy")
    quartiles = np.percentile(x, [25, 50, 75])
    np.testing.assert_allclose(quartiles, [-1.0, 0.0, 1.0], atol=0.05)
    assert np.abs(x).max() > 1e3  # Outliers far beyond a normal's.


def test_held_out_exponential_is_shifted_and_skewed():
    x = _held_out("exponential")
    assert x.min() > 999.0
    e = x - 1000.0
    assert abs(e.mean() - 1.0) < 0.02 and abs(np.median(e) - np.log(2)) < 0.02


def test_held_out_clusters_are_few_tight_and_far_apart():
    x = _held_out("clusters", num_lists=200)
    counts = []
    for row in x:
        ordered = np.sort(row)
        gaps = np.diff(ordered)
        # Clusters: runs of items within 0.2 of each other.
        groups = np.split(ordered, np.flatnonzero(gaps > 0.2) + 1)
        counts.append(len(groups))
        assert max(np.ptp(g) for g in groups) < 0.2
    counts = np.array(counts)
    assert counts.min() >= 1 and counts.max() <= 5
    # Centres ~ N(0, 100): two clusters rarely merge.
    assert np.mean(counts >= 2) > 0.95
    assert set(np.unique(counts)) >= {2, 3, 4, 5}


def test_held_out_near_ties():
    x = _held_out("near_ties")
    np.testing.assert_allclose(np.median(x.std(axis=1)), 1e-3, rtol=0.05)
    assert np.std(x.mean(axis=1)) > 0.5  # The offset moves each list.
    assert np.mean([len(np.unique(r)) for r in x]) > 95  # Few exact ties.


def test_held_out_bad_arguments():
    with pytest.raises(ValueError, match="distribution"):
        held_out_lists("normal")
    with pytest.raises(ValueError, match="num_lists"):
        held_out_lists("wide", num_lists=0)
    with pytest.raises(ValueError, match="seed"):
        held_out_lists("wide", seed=1.5)


def test_tfds_builder_offline(tmp_path):
    import tensorflow_datasets as tfds

    import keras_sodeep.datasets  # noqa: F401 (registers the builder)

    assert "sodeep_synthetic" in tfds.list_builders()
    ds = tfds.load(
        "sodeep_synthetic/small",
        split="test",
        data_dir=str(tmp_path),
        as_supervised=True,
        download=True,
    )
    pairs = list(tfds.as_numpy(ds))
    scores = np.stack([p[0] for p in pairs])
    ranks = np.stack([p[1] for p in pairs])
    assert scores.shape == ranks.shape == (100, 16)
    np.testing.assert_allclose(
        ranks, _scipy_normalized_ranks(scores), atol=1e-6
    )
    # The same lists as the evaluation protocol, in order.
    expected, _ = evaluation_lists(num_lists=100, seq_len=16)
    np.testing.assert_array_equal(scores, expected)
    # A second build elsewhere gives the same data (deterministic).
    again = tfds.load(
        "sodeep_synthetic/small",
        split="test",
        data_dir=str(tmp_path / "again"),
        as_supervised=True,
    )
    np.testing.assert_array_equal(
        np.stack([p[0] for p in tfds.as_numpy(again)]), scores
    )


def test_tfds_standard_config_shapes():
    import tensorflow_datasets as tfds

    import keras_sodeep.datasets  # noqa: F401

    builder = tfds.builder("sodeep_synthetic", data_dir="/nonexistent")
    assert builder.builder_config.name == "standard"
    assert builder.info.features["scores"].shape == (100,)
    assert builder.builder_config.num_lists == 10000
