import keras
import numpy as np
import pytest
import tensorflow as tf
from oracles import smooth_ranks_oracle
from scipy.stats import rankdata

from keras_sodeep.sorters import (
    CNNSorter,
    GRUSorter,
    HistogramSorter,
    LSTMSorter,
    Sorter,
)

# Tensors that need a gradient (PyTorch) to NumPy.
to_numpy = keras.ops.convert_to_numpy

N = 12

# Small versions of every sorter, keyed by a readable id.
SMALL = {
    "lstm": lambda: LSTMSorter(N, units=8, num_layers=1),
    "lstm_generic": lambda: LSTMSorter(None, units=8, num_layers=1),
    "cnn": lambda: CNNSorter(N, filters=8, kernel_size=3, num_blocks=8),
    "gru": lambda: GRUSorter(units=8, num_layers=2, context_units=4),
    "histogram": lambda: HistogramSorter(anchors=(5, 8), hidden_units=4),
}
FIXED = ["lstm", "cnn"]
GENERIC = ["lstm_generic", "gru", "histogram"]


def make(name):
    keras.utils.set_random_seed(1)
    return SMALL[name]()


def normalized_ranks(x, mask=None):
    """Oracle: scipy's descending tie-averaged ranks / list size."""
    if mask is None:
        mask = np.ones(x.shape, bool)
    out = np.zeros(x.shape)
    for row, keep, dest in zip(x, mask, out):
        dest[keep] = rankdata(-row[keep]) / keep.sum()
    return out


def random_mask(rng, shape, keep=0.6):
    mask = rng.random(shape) < keep
    mask[:, 0] = True
    return mask


@pytest.mark.backend
@pytest.mark.parametrize("name", list(SMALL))
def test_shape_dtype_and_range(rng, name):
    sorter = make(name)
    x = rng.normal(size=(5, N)).astype("float32")
    y = to_numpy(sorter(x))
    assert y.shape == (5, N)
    assert keras.backend.standardize_dtype(sorter(x).dtype) == "float32"
    assert sorter.seq_len == (N if name in FIXED else None)
    # The histogram sorter's rank estimates are not squashed: they stay
    # within half a rank of [1, n].
    top = 1 + 0.5 / N if name == "histogram" else 1
    assert np.all((y > 0) & (y < top))


@pytest.mark.parametrize("name", GENERIC)
def test_generic_sorters_take_any_length(rng, name):
    sorter = make(name)
    for n in (1, 3, 40):
        x = rng.normal(size=(2, n))
        assert to_numpy(sorter(x)).shape == (2, n)


@pytest.mark.parametrize("name", list(SMALL))
def test_invariant_to_positive_affine_maps(rng, name):
    sorter = make(name)
    x = rng.normal(size=(4, N))
    mask = random_mask(rng, x.shape)
    expected = to_numpy(sorter(x.astype("float32")))
    expected_masked = to_numpy(sorter(x.astype("float32"), mask=mask))
    for scale, shift in [(1000.0, 50.0), (0.001, 0.0), (3.0, -20.0)]:
        mapped = (scale * x + shift).astype("float32")
        np.testing.assert_allclose(sorter(mapped), expected, atol=2e-5)
        np.testing.assert_allclose(
            sorter(mapped, mask=mask), expected_masked, atol=2e-5
        )


@pytest.mark.parametrize("name", list(SMALL))
def test_constant_lists_give_no_nan(name):
    sorter = make(name)
    x = tf.constant([[3.5] * N, [0.0] * N, [-1e6] * N])
    mask = np.ones((3, N), bool)
    mask[1, 5:] = False
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = sorter(x, mask=mask)
        total = tf.reduce_sum(y * tf.range(N, dtype="float32"))
    assert np.all(np.isfinite(y))
    assert np.all(np.isfinite(tape.gradient(total, x)))


@pytest.mark.parametrize("name", list(SMALL))
def test_masked_items_output_zero_and_do_not_matter(rng, name):
    sorter = make(name)
    x = rng.normal(size=(6, N)).astype("float32")
    mask = random_mask(rng, x.shape)
    y = to_numpy(sorter(x, mask=mask))
    assert np.all(y[~mask] == 0)
    assert np.all(y[mask] > 0)
    other = np.where(mask, x, rng.normal(size=x.shape) * 1e3).astype("float32")
    np.testing.assert_allclose(sorter(other, mask=mask), y, atol=1e-6)
    other[~mask] = np.nan
    np.testing.assert_allclose(sorter(other, mask=mask), y, atol=1e-6)


@pytest.mark.parametrize("name", GENERIC)
def test_generic_mask_equals_removing_the_items(rng, name):
    sorter = make(name)
    x = rng.normal(size=(4, N)).astype("float32")
    mask = random_mask(rng, x.shape)
    y = to_numpy(sorter(x, mask=mask))
    for row, keep, out in zip(x, mask, y):
        alone = to_numpy(sorter(row[keep][None]))[0]
        np.testing.assert_allclose(out[keep], alone, atol=1e-5)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_mask_pads_below_the_minimum(rng, name):
    # Documented rule: the k-th masked item becomes min - k * gap with
    # gap = (max - min) / (m - 1); unmasked outputs are scaled by n / m.
    sorter = make(name)
    x = rng.normal(size=(4, N)).astype("float32")
    mask = random_mask(rng, x.shape)
    filled = x.copy()
    for row, keep in zip(filled, mask):
        lo, hi, m = row[keep].min(), row[keep].max(), keep.sum()
        gap = (hi - lo) / max(m - 1, 1)
        row[~keep] = lo - gap * np.arange(1, (~keep).sum() + 1)
    expected = to_numpy(sorter(filled)) * N / mask.sum(-1, keepdims=True)
    expected[~mask] = 0
    np.testing.assert_allclose(sorter(x, mask=mask), expected, atol=1e-5)


def test_fixed_length_sorters_reject_other_lengths(rng):
    x = rng.normal(size=(2, N - 2)).astype("float32")
    for name in FIXED:
        with pytest.raises(ValueError, match=f"seq_len={N}.*GRUSorter"):
            make(name)(x)
    with pytest.raises(ValueError, match="batch_size, list_size"):
        make("gru")(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="mask"):
        make("gru")(x, mask=np.ones((2, 3), bool))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: LSTMSorter(0), "seq_len"),
        (lambda: LSTMSorter(8, units=0), "units"),
        (lambda: LSTMSorter(8, num_layers=1.5), "num_layers"),
        (lambda: CNNSorter(None), "seq_len"),
        (lambda: CNNSorter(8, num_blocks=0), "num_blocks"),
        (lambda: CNNSorter(8, kernel_size=True), "kernel_size"),
        (lambda: GRUSorter(seq_len=8), "seq_len"),
        (lambda: GRUSorter(context_units=-1), "context_units"),
        (lambda: HistogramSorter(seq_len=8), "seq_len"),
        (lambda: HistogramSorter(hidden_units=0), "hidden_units"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("name", list(SMALL))
def test_get_config_from_config(rng, name):
    sorter = make(name)
    x = rng.normal(size=(3, N)).astype("float32")
    y = sorter(x)
    config = sorter.get_config()
    clone = type(sorter).from_config(config)
    assert clone.get_config() == config
    clone.build((None, N))
    clone.set_weights(sorter.get_weights())
    np.testing.assert_allclose(clone(x), y, atol=1e-6)


def test_configs_mirror_the_constructors():
    config = LSTMSorter(7, units=5, num_layers=3).get_config()
    assert (config["seq_len"], config["units"], config["num_layers"]) == (
        7,
        5,
        3,
    )
    config = CNNSorter(9, filters=4, kernel_size=5, num_blocks=2).get_config()
    assert [config[k] for k in ("seq_len", "filters", "kernel_size")] == [
        9,
        4,
        5,
    ]
    assert config["num_blocks"] == 2
    config = GRUSorter(units=3, num_layers=4, context_units=0).get_config()
    assert "seq_len" not in config
    assert [config[k] for k in ("units", "num_layers", "context_units")] == [
        3,
        4,
        0,
    ]
    config = HistogramSorter(anchors=(8, 16), hidden_units=3).get_config()
    assert "seq_len" not in config
    assert (config["anchors"], config["hidden_units"]) == ([8, 16], 3)


@pytest.mark.parametrize("name", list(SMALL))
def test_build_creates_every_weight(name):
    sorter = make(name)
    sorter.build((None, N))
    built = sorter.count_params()
    assert built > 0
    sorter(np.zeros((1, N), "float32"))
    assert sorter.count_params() == built
    sorter.build((None, N))  # A second build is a no-op.
    assert sorter.count_params() == built


@pytest.mark.parametrize("name", list(SMALL))
def test_keras_file_round_trip(rng, tmp_path, name):
    sorter = make(name)
    x = rng.normal(size=(3, N)).astype("float32")
    mask = random_mask(rng, x.shape)
    y, y_masked = sorter(x), sorter(x, mask=mask)
    path = str(tmp_path / "sorter.keras")
    sorter.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(sorter)
    assert isinstance(loaded, Sorter)
    assert loaded.get_config() == sorter.get_config()
    np.testing.assert_array_equal(loaded(x), y)
    np.testing.assert_array_equal(loaded(x, mask=mask), y_masked)


@pytest.mark.parametrize("name", list(SMALL))
def test_graph_mode_with_xla(rng, name):
    # Plain graph mode (tf.function) is exercised by the training test.
    sorter = make(name)
    x = rng.normal(size=(3, N)).astype("float32")
    mask = random_mask(rng, x.shape)
    run = tf.function(
        lambda s, m: sorter(s, mask=m, training=False), jit_compile=True
    )
    np.testing.assert_allclose(run(x, mask), sorter(x, mask=mask), atol=1e-5)


def test_mixed_precision_outputs_float32(rng):
    x = rng.normal(size=(2, N)).astype("float32") * 1e3 + 5e3
    try:
        keras.config.set_dtype_policy("mixed_float16")
        for name in SMALL:
            sorter = make(name)
            y = sorter(x)
            assert sorter.dtype_policy.name == "mixed_float16"
            assert y.dtype == "float32"
            assert np.all(np.isfinite(y))
    finally:
        keras.config.set_dtype_policy("float32")


def random_lists(rng, batch, n_min, n_max, n_pad):
    x = rng.normal(size=(batch, n_pad)) * rng.uniform(0.1, 10, (batch, 1))
    x[: batch // 2] = rng.uniform(-1, 1, size=(batch // 2, n_pad))
    lengths = rng.integers(n_min, n_max + 1, size=batch)
    mask = np.arange(n_pad)[None] < lengths[:, None]
    return x.astype("float32"), mask


@pytest.mark.parametrize("name", list(SMALL))
def test_loss_falls_in_a_short_training_run(rng, name):
    keras.utils.set_random_seed(2)
    sorter = SMALL[name]()
    learning_rate = 0.01
    if name == "histogram":
        # Untrained, it already ranks well; blur its counts so that there
        # is something to learn.
        sorter.build((None, 16))
        sorter.log_temperature.assign([1.0, 1.0])
        learning_rate = 0.05
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    generic = name in GENERIC

    @tf.function
    def step(x, mask, target):
        with tf.GradientTape() as tape:
            y = sorter(x, mask=mask, training=True)
            loss = tf.reduce_mean(tf.square(y - target))
        variables = sorter.trainable_variables
        optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables)
        )
        return loss

    losses = []
    for _ in range(40):
        if generic:
            x, mask = random_lists(rng, 32, 8, 16, 16)
        else:
            x, mask = random_lists(rng, 32, N, N, N)
        target = normalized_ranks(x, mask).astype("float32")
        losses.append(float(step(x, mask, target)))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert np.isfinite(losses).all()
    assert last < 0.5 * first, (first, last)


@pytest.mark.backend
def test_fit_with_a_masked_dict_input(rng):
    sorter = make("gru")
    x, mask = random_lists(rng, 64, 4, N, N)
    target = normalized_ranks(x, mask).astype("float32")
    sorter.compile(optimizer="adam", loss="mse")
    history = sorter.fit(
        {"scores": x, "mask": mask}, target, epochs=1, batch_size=32, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    y = to_numpy(sorter.predict({"scores": x, "mask": mask}, verbose=0))
    assert np.all(y[~mask] == 0)


def test_untrained_histogram_sorter_is_close_to_exact(rng):
    # Its counts are exact up to the temperature; only items sharing a bin
    # are estimated. Oracle: scipy's ranks.
    sorter = HistogramSorter()
    for n in (10, 100, 1000):
        x = rng.normal(size=(8, n)) * rng.uniform(0.1, 10, (8, 1))
        x[:4] = rng.uniform(-1, 1, size=(4, n))
        x = x.astype("float32")
        error = np.abs(to_numpy(sorter(x)) - normalized_ranks(x))
        assert np.mean(error) < 0.005, (n, np.mean(error))
        assert np.max(error) < 0.1, (n, np.max(error))


def test_histogram_sorter_gradients_reach_every_item(rng):
    sorter = HistogramSorter()
    x = tf.constant(rng.normal(size=(2, 50)).astype("float32"))
    weights = tf.constant(rng.normal(size=(2, 50)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(sorter(x) * weights)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.mean(grad != 0) > 0.9
    # Raising one score lowers its own normalized rank (rank 1 = highest).
    with tf.GradientTape() as tape:
        tape.watch(x)
        own = sorter(x)[0, 7]
    assert tape.gradient(own, x).numpy()[0, 7] < 0


@pytest.mark.parametrize(
    "kwargs", [{"anchors": ()}, {"anchors": (2, 8)}, {"anchors": (8.0,)}]
)
def test_histogram_sorter_rejects_bad_anchors(kwargs):
    with pytest.raises(ValueError, match="anchors"):
        HistogramSorter(**kwargs)


@pytest.mark.parametrize("log_temperature", [-3.0, 0.0, 2.0])
def test_histogram_sorter_own_rank_never_rises_with_its_score(
    rng, log_temperature
):
    # The diagonal of d rank_i / d x_i is <= 0 at any temperature (each
    # item is left out of its own counts): with the item counted in its own
    # bin, soft counts gave it the wrong sign and SpearmanLoss learned the
    # reverse order.
    sorter = HistogramSorter(anchors=(64, 256))
    sorter.build((None, 30))
    sorter.log_temperature.assign([log_temperature] * 2)
    x = tf.constant(rng.normal(size=(3, 30)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = sorter(x)
    jacobian = tape.batch_jacobian(y, x).numpy()
    diagonal = np.diagonal(jacobian, axis1=1, axis2=2)
    # Cross terms (through the min-max scaling and the first pass's
    # estimates of the other items) leave tiny positive values at most.
    assert np.all(diagonal <= 1e-3 * np.abs(diagonal).max()), diagonal.max()


def test_histogram_sorter_trains_a_model_with_spearman_loss(rng):
    from scipy.stats import spearmanr

    from keras_sodeep.losses import SpearmanLoss

    x = rng.normal(size=(512, 4)).astype("float32")
    y = np.tanh(x @ np.array([1.0, -2.0, 0.5, 0.0])).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=SpearmanLoss(ranker=HistogramSorter()),
    )
    before = spearmanr(model.predict(x, verbose=0)[:, 0], y).statistic
    model.fit(x, y, batch_size=128, epochs=5, verbose=0)
    after = spearmanr(model.predict(x, verbose=0)[:, 0], y).statistic
    assert after > 0.95 and after > before, (before, after)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: HistogramSorter(**kw),
        lambda **kw: LSTMSorter(20, units=4, num_layers=1, **kw),
        lambda **kw: CNNSorter(20, filters=4, num_blocks=2, **kw),
        lambda **kw: GRUSorter(units=4, num_layers=1, **kw),
    ],
    ids=["histogram", "lstm", "cnn", "gru"],
)
def test_gradient_temperature_changes_score_gradients_only(rng, make):
    plain = make()
    plain.build((None, 20))
    smooth = make(gradient_temperature=0.3, gradient_bins=8)
    smooth.build((None, 20))
    smooth.set_weights(plain.get_weights())
    config = smooth.get_config()
    assert config["gradient_temperature"] == 0.3
    assert config["gradient_bins"] == 8
    with pytest.raises(ValueError, match="gradient_temperature"):
        make(gradient_temperature=0.0)
    with pytest.raises(ValueError, match="gradient_bins"):
        make(gradient_temperature=0.3, gradient_bins=1)
    x = tf.constant(rng.normal(size=(4, 20)).astype("float32"))
    np.testing.assert_allclose(smooth(x), plain(x), atol=1e-6)
    weights = tf.constant(rng.normal(size=(4, 20)).astype("float32"))
    grads = []
    for sorter in (plain, smooth):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(sorter(x) * weights)
        grads.append(tape.gradient(loss, [x] + sorter.trainable_variables))
    # The smooth gradient reaches every item...
    assert np.all(grads[1][0].numpy() != 0)
    assert not np.allclose(grads[1][0], grads[0][0])
    # ...and leaves the gradients of the sorter's weights as they were.
    for a, b in zip(grads[0][1:], grads[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # Raising a score never raises its own rank under the surrogate.
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = smooth(x)
    diagonal = np.diagonal(tape.batch_jacobian(y, x).numpy(), 0, 1, 2)
    assert np.all(diagonal < 0)
    # Scale-free: on 100 x the gradient is the same, divided by 100.
    with tf.GradientTape() as tape:
        big = 100.0 * x
        tape.watch(big)
        loss = tf.reduce_sum(smooth(big) * weights)
    np.testing.assert_allclose(
        tape.gradient(loss, big).numpy() * 100.0,
        grads[1][0],
        rtol=2e-3,
        atol=1e-6,
    )


@pytest.mark.parametrize("groups", [4, 64])
def test_smooth_ranks_match_a_numpy_transcription(rng, groups):
    from keras_sodeep.ranking import exact_rank
    from keras_sodeep.ranking.smooth import smooth_ranks

    x = rng.normal(size=(3, 40)).astype("float32")
    mask = np.ones_like(x, dtype=bool)
    ranks = np.asarray(exact_rank(x)) / 40
    got = np.asarray(smooth_ranks(x, ranks, mask, groups, 0.3))
    for b in range(3):
        np.testing.assert_allclose(
            got[b], smooth_ranks_oracle(x[b], groups, 0.3), rtol=1e-4
        )


def test_smooth_ranks_ignore_whatever_masked_items_hold(rng):
    from keras_sodeep.ranking import exact_rank
    from keras_sodeep.ranking.smooth import smooth_ranks

    x = rng.normal(size=(2, 12)).astype("float32")
    mask = np.ones_like(x, dtype=bool)
    mask[:, 8:] = False
    ranks = np.asarray(exact_rank(x, mask=mask)) / 8
    clean = np.asarray(smooth_ranks(x, ranks, mask, 64, 0.3))
    dirty = x.copy()
    dirty[:, 8] = np.nan
    dirty[:, 9] = np.inf
    dirty = tf.constant(dirty)
    with tf.GradientTape() as tape:
        tape.watch(dirty)
        value = smooth_ranks(dirty, ranks, mask, 64, 0.3)
        total = tf.reduce_sum(tf.where(mask, value, 0.0))
    grad = tape.gradient(total, dirty).numpy()
    np.testing.assert_allclose(np.asarray(value)[:, :8], clean[:, :8])
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 8:] == 0)


def test_smooth_outputs_are_the_smooth_ranking(rng):
    with pytest.raises(ValueError, match="gradient_temperature"):
        HistogramSorter(smooth_outputs=True)
    sorter = HistogramSorter(gradient_temperature=0.6, smooth_outputs=True)
    assert HistogramSorter.from_config(sorter.get_config()).smooth_outputs
    x = rng.normal(size=(3, 41)).astype("float64")
    got = to_numpy(sorter(x.astype("float32")))
    for b in range(3):
        expected = (0.5 + smooth_ranks_oracle(x[b], 64, 0.6)) / 41
        np.testing.assert_allclose(got[b], expected, rtol=1e-4)
    # Scale-free, and a score's gradient lowers its own rank.
    np.testing.assert_allclose(
        sorter(100.0 * x.astype("float32")), got, rtol=1e-4
    )
    scores = tf.constant(x.astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(scores)
        y = sorter(scores)
    diagonal = np.diagonal(tape.batch_jacobian(y, scores).numpy(), 0, 1, 2)
    assert np.all(diagonal < 0)


@pytest.mark.backend
@pytest.mark.parametrize("chunk_size", [2**21, 1000])
def test_soft_counts_in_chunks_equal_the_formula(rng, monkeypatch, chunk_size):
    from keras_sodeep.sorters import counting

    # 1000 pairs at a time: a loop over 3 * 64 * 1001 / 1000 chunks of
    # items, the last one padded; 2**21: summed at once.
    monkeypatch.setattr(counting, "CHUNK_SIZE", chunk_size)
    t = rng.uniform(-1, 1, (3, 1001)).astype("float32")
    w = (rng.random((3, 1001)) < 0.8).astype("float32")
    anchors = np.linspace(-1, 1, 64).astype("float32")
    expected = np.sum(
        w[..., None] / (1 + np.exp(-(t[..., None] - anchors) / 0.05)), axis=1
    )
    got = counting.soft_counts(
        keras.ops.convert_to_tensor(t),
        keras.ops.convert_to_tensor(w),
        keras.ops.convert_to_tensor(anchors),
        0.05,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), expected, rtol=1e-4, atol=1e-3
    )


def test_a_frozen_sorter_is_not_recorded_by_an_eager_tape(rng):
    # TensorFlow's tape watches variables created trainable even once the
    # layer is frozen, and keeps every intermediate of the ops reading
    # them (gigabytes for a preset on a list of a million items).
    sorter = HistogramSorter(gradient_temperature=0.1, smooth_outputs=True)
    x = tf.Variable(rng.normal(size=(2, 50)).astype("float32"))
    sorter(x)
    sorter.trainable = False
    with tf.GradientTape() as tape:
        ranks = sorter(x)
        total = tf.reduce_sum(ranks * np.arange(50.0, dtype="float32"))
    assert tape.watched_variables() == (x,)
    gradient = tape.gradient(total, x)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    # Frozen or not, the same ranks.
    sorter.trainable = True
    np.testing.assert_allclose(sorter(x), ranks, rtol=1e-6)
