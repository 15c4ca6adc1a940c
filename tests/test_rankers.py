import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import rankdata

from keras_sodeep.ranking import (
    ExactRanker,
    NeuralSortRanker,
    Ranker,
    SigmoidRanker,
    SorterRanker,
)


def masked_rankdata(x, mask):
    """Oracle: scipy ranks of the unmasked items of each last-axis list."""
    out = np.zeros(x.shape, dtype=np.float64)
    flat_x = x.reshape(-1, x.shape[-1])
    flat_m = mask.reshape(-1, x.shape[-1])
    flat_o = out.reshape(-1, x.shape[-1])
    for row, keep, dest in zip(flat_x, flat_m, flat_o):
        dest[keep] = rankdata(-row[keep], method="average")
    return out


def sigmoid_oracle(x, tau, mask):
    """NumPy transcription of r_i = 1 + sum_{j != i} sigmoid((x_j-x_i)/tau)."""
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape[:-1]):
        row, keep = x[idx], mask[idx]
        for i in np.flatnonzero(keep):
            others = [j for j in np.flatnonzero(keep) if j != i]
            z = (row[others] - row[i]) / tau
            out[idx + (i,)] = 1.0 + np.sum(1.0 / (1.0 + np.exp(-z)))
    return out


def relative_sigmoid_oracle(x, tau, mask):
    """NumPy transcription of the relative sigmoid ranks.

    r_i = 1 + sum_{j != i} sigmoid((x_j - x_i) / (tau s)), s the population
    standard deviation of the list's unmasked items, 1 if it is 0.
    """
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape[:-1]):
        keep = mask[idx]
        s = np.std(x[idx][keep]) if keep.any() else 0.0
        s = s if s > 0 else 1.0
        out[idx] = sigmoid_oracle(x[idx], tau * s, keep)
    return out


def neuralsort_oracle(s, tau):
    """Grover et al. (2019), eq. 5, for one list, and column-normalized ranks.

    Builds P_hat row by row with the paper's notation
    P_hat[i, :] = softmax(((n + 1 - 2i) s - A_s 1) / tau).
    """
    n = len(s)
    a = np.abs(s[:, None] - s[None, :])
    p = np.zeros((n, n))
    for i in range(1, n + 1):
        z = ((n + 1 - 2 * i) * s - a.sum(axis=1)) / tau
        z = np.exp(z - z.max())
        p[i - 1] = z / z.sum()
    positions = np.arange(1, n + 1)
    return (p * positions[:, None]).sum(0) / p.sum(0), p


class SharpSorter(keras.Model):
    """A stand-in sorter: normalized sigmoid ranks at a tiny temperature.

    Has the `Sorter` interface (`seq_len`, `call(scores, mask=None)` ->
    rank / n on (batch, length) input) and one weight, so that freezing and
    saving can be checked.
    """

    def __init__(self, seq_len=None, temperature=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len
        self.temperature = temperature
        self.scale = self.add_weight(shape=(), initializer="ones", name="s")

    def call(self, scores, mask=None):
        if self.seq_len is not None:
            assert scores.shape[-1] == self.seq_len
        n = keras.ops.cast(keras.ops.shape(scores)[-1], scores.dtype)
        ranks = SigmoidRanker(self.temperature)(scores * self.scale)
        return ranks / n

    def get_config(self):
        return {"seq_len": self.seq_len, "temperature": self.temperature}


keras.saving.register_keras_serializable(package="keras_sodeep_tests")(
    SharpSorter
)

SHARP_RANKERS = {
    "exact": lambda: ExactRanker(),
    "sigmoid": lambda: SigmoidRanker(1e-4),
    "sigmoid_relative": lambda: SigmoidRanker(1e-4, relative=True),
    "neuralsort": lambda: NeuralSortRanker(1e-4),
    "sorter_generic": lambda: SorterRanker(SharpSorter(None)),
    "sorter_fixed": lambda: SorterRanker(SharpSorter(16)),
}


@pytest.mark.backend
@pytest.mark.parametrize("name", sorted(SHARP_RANKERS))
def test_sharp_rankers_match_scipy_with_mask_and_ties(rng, name):
    x = rng.integers(0, 5, size=(4, 2, 11)).astype("float32")
    x[0, 0] = rng.normal(size=11)  # one list without ties
    mask = rng.random(x.shape) > 0.3
    ranker = SHARP_RANKERS[name]()
    ranks = np.asarray(ranker(x, mask=mask))
    np.testing.assert_allclose(ranks, masked_rankdata(x, mask), atol=1e-3)
    unmasked = np.asarray(ranker(x))
    expected = rankdata(-x, method="average", axis=-1)
    np.testing.assert_allclose(unmasked, expected, atol=1e-3)


@pytest.mark.parametrize("name", sorted(SHARP_RANKERS))
def test_unbatched_and_xla(rng, name):
    ranker = SHARP_RANKERS[name]()
    x = rng.normal(size=9).astype("float32")
    np.testing.assert_allclose(ranker(x), rankdata(-x), atol=1e-3)
    xb = rng.normal(size=(3, 9)).astype("float32")
    mask = rng.random(xb.shape) > 0.3
    fn = tf.function(lambda a, m: ranker(a, mask=m), jit_compile=True)
    np.testing.assert_allclose(
        fn(xb, mask), masked_rankdata(xb, mask), atol=1e-3
    )


@pytest.mark.backend
def test_sigmoid_matches_formula(rng):
    x = rng.normal(size=(3, 6))
    mask = rng.random(x.shape) > 0.3
    ranks = SigmoidRanker(temperature=0.5)(x.astype("float32"), mask=mask)
    np.testing.assert_allclose(
        ranks, sigmoid_oracle(x, 0.5, mask), rtol=1e-5, atol=1e-5
    )


@pytest.mark.backend
def test_relative_sigmoid_matches_formula(rng):
    x = rng.normal(size=(3, 2, 7)) * np.array([[[0.01]], [[1.0]], [[100]]])
    mask = rng.random(x.shape) > 0.3
    mask[0, 0] = [True, False, False, False, False, False, False]  # s = 0
    ranker = SigmoidRanker(temperature=0.2, relative=True)
    ranks = ranker(x.astype("float32"), mask=mask)
    expected = relative_sigmoid_oracle(x, 0.2, mask)
    np.testing.assert_allclose(ranks, expected, rtol=1e-4, atol=1e-4)
    full = np.ones(x.shape, bool)
    np.testing.assert_allclose(
        ranker(x.astype("float32")),
        relative_sigmoid_oracle(x, 0.2, full),
        rtol=1e-4,
        atol=1e-4,
    )


def test_relative_sigmoid_is_invariant_to_affine_maps(rng):
    x = rng.standard_cauchy(size=(4, 30)).astype("float32")
    ranker = SigmoidRanker(temperature=0.1, relative=True)
    ranks = np.asarray(ranker(x))
    for a, b in ((100.0, 0.0), (0.01, 0.0), (1000.0, 50.0), (0.001, -3.0)):
        np.testing.assert_allclose(ranker(a * x + b), ranks, atol=2e-3)
    # The absolute form is not: 100 x is ranked far more sharply.
    absolute = SigmoidRanker(temperature=0.1)
    assert np.abs(absolute(100 * x) - absolute(x)).max() > 0.5


def test_relative_sigmoid_constant_and_short_lists_are_finite():
    ranker = SigmoidRanker(relative=True)
    x = tf.Variable(np.full((2, 5), 3.0, "float32"))
    with tf.GradientTape() as tape:
        ranks = ranker(x)
        target = ranks[0, 1]
    np.testing.assert_allclose(ranks, 3.0, atol=1e-6)  # (n + 1) / 2
    grad = tape.gradient(target, x).numpy()
    assert np.all(np.isfinite(grad)) and grad[0, 1] < 0
    single = np.asarray(ranker(np.array([[0.4]], "float32")))
    np.testing.assert_allclose(single, [[1.0]], atol=1e-6)
    empty = ranker(x, mask=np.zeros((2, 5), bool))
    np.testing.assert_array_equal(empty, 0.0)


@pytest.mark.parametrize("relative", [False, True])
def test_sigmoid_masked_nan_reaches_neither_ranks_nor_gradients(rng, relative):
    values = rng.normal(size=(2, 6)).astype("float32")
    mask = np.ones((2, 6), bool)
    mask[0, [1, 4]] = False
    values[0, 1], values[0, 4] = np.nan, np.inf
    x = tf.Variable(values)
    ranker = SigmoidRanker(temperature=0.3, relative=relative)
    with tf.GradientTape() as tape:
        ranks = ranker(x, mask=mask)
        loss = tf.reduce_sum(ranks * np.arange(1.0, 7.0, dtype="float32"))
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(ranks)) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0, [1, 4]], 0.0)
    # The unmasked items are ranked as the short list alone.
    short = ranker(values[0, mask[0]][None]).numpy()[0]
    np.testing.assert_allclose(np.asarray(ranks)[0, mask[0]], short, 1e-6)


def test_relative_sigmoid_spread_has_no_gradient(rng):
    x = tf.Variable(rng.normal(size=(3, 8)).astype("float32") * 5.0)
    weights = rng.normal(size=(3, 8)).astype("float32")
    spread = np.std(x.numpy(), axis=-1)
    grads = []
    for ranker in (
        SigmoidRanker(temperature=0.2, relative=True),
        *[SigmoidRanker(temperature=0.2 * float(s)) for s in spread],
    ):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(ranker(x) * weights, axis=-1)
        grads.append(tape.jacobian(loss, x).numpy())
    # Row i of the relative ranker equals the absolute ranker at t * s_i,
    # gradient included: s_i is a constant.
    for i in range(3):
        np.testing.assert_allclose(
            grads[0][i], grads[1 + i][i], rtol=1e-4, atol=1e-6
        )


@pytest.mark.backend
def test_neuralsort_matches_paper_formula(rng):
    s = rng.normal(size=7)
    ranks = NeuralSortRanker(temperature=0.7)(s.astype("float32"))
    expected, p_hat = neuralsort_oracle(s, 0.7)
    np.testing.assert_allclose(ranks, expected, rtol=1e-4)
    # The relaxation is unimodal: each row peaks at the sorted item.
    np.testing.assert_array_equal(p_hat.argmax(1), np.argsort(-s))
    assert np.all((np.asarray(ranks) >= 1) & (np.asarray(ranks) <= 7))


@pytest.mark.backend
def test_neuralsort_mask_is_the_short_list(rng):
    s = rng.normal(size=(2, 8)).astype("float32")
    mask = np.array([[True] * 5 + [False] * 3, [False, True] * 4])
    ranks = np.asarray(NeuralSortRanker(0.5)(s, mask=mask))
    for row, keep, got in zip(s, mask, ranks):
        expected, _ = neuralsort_oracle(row[keep].astype("float64"), 0.5)
        np.testing.assert_allclose(got[keep], expected, rtol=1e-4)
        np.testing.assert_array_equal(got[~keep], 0.0)


@pytest.mark.backend
@pytest.mark.parametrize(
    "ranker",
    [SigmoidRanker(0.1), NeuralSortRanker(1.0), SorterRanker(SharpSorter())],
    ids=["sigmoid", "neuralsort", "sorter"],
)
def test_edge_lists_are_finite(ranker):
    constant = np.full((2, 5), 3.0, "float32")
    ranks = np.asarray(ranker(constant))
    np.testing.assert_allclose(ranks, 3.0, atol=1e-3)  # all tied: (n+1)/2
    single = np.asarray(ranker(np.array([[0.4]], "float32")))
    np.testing.assert_allclose(single, [[1.0]], atol=1e-3)
    empty = np.asarray(ranker(constant, mask=np.zeros((2, 5), bool)))
    np.testing.assert_array_equal(empty, 0.0)


@pytest.mark.parametrize(
    "ranker",
    [SigmoidRanker(0.3), NeuralSortRanker(0.3)],
    ids=["sigmoid", "neuralsort"],
)
def test_gradients_finite_and_push_the_right_way(rng, ranker):
    x = tf.Variable(rng.normal(size=(2, 6)).astype("float32"))
    mask = np.ones((2, 6), bool)
    mask[1, 2] = False
    with tf.GradientTape() as tape:
        ranks = ranker(x, mask=mask)
        target = ranks[0, 3]
    grad = tape.gradient(target, x).numpy()
    assert np.all(np.isfinite(grad))
    # Raising an item's score lowers (improves) its rank.
    assert grad[0, 3] < 0
    assert np.all(grad[1] == 0)


@pytest.mark.backend
def test_sorter_ranker_pads_a_fixed_length_sorter(rng):
    class Recorder(SharpSorter):
        def call(self, scores, mask=None):
            self.seen = scores
            return super().call(scores)

    sorter = Recorder(seq_len=10)
    x = rng.normal(size=(2, 4)).astype("float32")
    mask = np.array([[True, True, False, True], [True] * 4])
    ranks = np.asarray(SorterRanker(sorter)(x, mask=mask))
    np.testing.assert_allclose(ranks, masked_rankdata(x, mask), atol=1e-3)
    seen = np.asarray(sorter.seen)
    assert seen.shape == (2, 10)
    # Real items keep their values; padding lies below the list minimum.
    np.testing.assert_array_equal(seen[1, :4], x[1])
    assert np.all(seen[1, 4:] < x[1].min())
    assert np.all(seen[0, [2, 4, 5]] < x[0, mask[0]].min())


def test_sorter_ranker_dynamic_length_in_graph(rng):
    ranker = SorterRanker(SharpSorter(seq_len=12))
    fn = tf.function(
        lambda a: ranker(a), input_signature=[tf.TensorSpec((None, None))]
    )
    for n in (3, 12):
        x = rng.normal(size=(2, n)).astype("float32")
        np.testing.assert_allclose(fn(x), rankdata(-x, axis=-1), atol=1e-3)


def test_sorter_ranker_rejects_long_lists():
    ranker = SorterRanker(SharpSorter(seq_len=5))
    with pytest.raises(ValueError, match="seq_len=5.*length-generic"):
        ranker(np.zeros((2, 6), "float32"))


def test_sorter_ranker_is_frozen_by_default():
    sorter = SharpSorter()
    ranker = SorterRanker(sorter)
    ranker(np.zeros((1, 3), "float32"))
    assert ranker.trainable_weights == []
    model = keras.Sequential([keras.Input((3,)), ranker])
    assert model.trainable_weights == []
    assert not sorter.trainable
    trainable = SorterRanker(SharpSorter(), trainable=True)
    trainable(np.zeros((1, 3), "float32"))
    assert len(trainable.trainable_weights) == 1


def test_sorter_ranker_gradient_flows_to_scores(rng):
    ranker = SorterRanker(SharpSorter(seq_len=8, temperature=0.3))
    x = tf.Variable(rng.normal(size=(1, 5)).astype("float32"))
    with tf.GradientTape() as tape:
        target = ranker(x)[0, 2]
    grad = tape.gradient(target, x).numpy()
    assert np.all(np.isfinite(grad)) and grad[0, 2] < 0


@pytest.mark.backend
@pytest.mark.parametrize(
    "ranker",
    [
        ExactRanker(),
        SigmoidRanker(0.25),
        SigmoidRanker(0.25, relative=True),
        NeuralSortRanker(2.0),
        SorterRanker(SharpSorter(seq_len=7)),
    ],
    ids=["exact", "sigmoid", "sigmoid_relative", "neuralsort", "sorter"],
)
def test_config_round_trip(rng, ranker):
    x = rng.normal(size=(2, 5)).astype("float32")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ranker)
    )
    assert type(restored) is type(ranker)
    assert restored.get_config() == ranker.get_config()
    np.testing.assert_allclose(restored(x), ranker(x), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        SigmoidRanker(temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        NeuralSortRanker(temperature=-1)
    with pytest.raises(TypeError, match="relative"):
        SigmoidRanker(relative="yes")
    with pytest.raises(TypeError, match="sorter"):
        SorterRanker("not a model")
    with pytest.raises(ValueError, match="mask"):
        SigmoidRanker()(np.zeros((2, 3)), mask=np.ones((3, 2), bool))
    with pytest.raises(NotImplementedError):
        Ranker()(np.zeros(3))


def test_relative_sigmoid_spec():
    from keras_sodeep import ranking

    ranker = ranking.get("sigmoid:0.3:relative")
    assert isinstance(ranker, SigmoidRanker)
    assert (ranker.temperature, ranker.relative) == (0.3, True)
    assert ranking.get("sigmoid:0.3").relative is False
    with pytest.raises(ValueError, match="sigmoid:T:relative"):
        ranking.get("sigmoid:0.3:absolute")
    with pytest.raises(ValueError, match="should be a number"):
        ranking.get("sigmoid:x:relative")


def real_sorters():
    from keras_sodeep.sorters import CNNSorter, GRUSorter, LSTMSorter

    keras.utils.set_random_seed(0)
    return {
        "lstm": LSTMSorter(seq_len=8, units=4, num_layers=1),
        "cnn": CNNSorter(seq_len=8, filters=4, num_blocks=2),
        "gru": GRUSorter(units=4, num_layers=1, context_units=4),
    }


@pytest.mark.parametrize("name", ["lstm", "cnn", "gru"])
def test_sorter_ranker_with_real_untrained_sorters(rng, name):
    """Untrained sorters rank badly; what is checked is the plumbing."""
    sorter = real_sorters()[name]
    ranker = SorterRanker(sorter)
    x = rng.normal(size=(3, 5)).astype("float32")
    mask = np.ones((3, 5), bool)
    mask[1, 3] = False
    ranks = np.asarray(ranker(x, mask=mask))
    # Oracle: the padded lists built by hand, ranked by the sorter itself.
    length = 8 if sorter.seq_len else 5
    for row, keep, got in zip(x, mask, ranks):
        low, high, m = row[keep].min(), row[keep].max(), keep.sum()
        gap = (high - low) / (m - 1)
        padded = np.full(length, 0.0, "float32")
        padded[:5] = row
        pads = np.concatenate([np.flatnonzero(~keep), np.arange(5, length)])
        padded[pads] = low - gap * np.arange(1, len(pads) + 1)
        expected = np.asarray(sorter(padded[None]))[0, :5] * length
        np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-4)
        np.testing.assert_array_equal(got[~keep], 0.0)
    fn = tf.function(lambda a, m: ranker(a, mask=m), jit_compile=True)
    np.testing.assert_allclose(fn(x, mask), ranks, rtol=1e-4, atol=1e-5)
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(ranker(v, mask=mask) * np.arange(5.0))
    grad = tape.gradient(total, v).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    assert ranker.trainable_weights == []
