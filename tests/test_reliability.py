"""Principles of issue 17 for the losses, rankers and metrics.

- A non-finite score, or a NaN label, among the items that take part gives
  a NaN loss (inside a compiled function) or a ``ValueError`` (eagerly),
  never a finite loss.
- A masked or padded item reaches no value and no gradient, whatever it
  holds (NaN, inf, huge values).

Plus the repros of defects 4, 12-15, 17 and 18. Losses come from the
checklist table (`checklist.CASES`), so a new loss is covered by adding its
row there.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from checklist import CASES, is_loss

from keras_sodeep import losses, metrics
from keras_sodeep.ranking import (
    ExactRanker,
    NeuralSortRanker,
    SigmoidRanker,
    SorterRanker,
)

LOSS_ROWS = [
    (case, axis)
    for case in CASES
    if is_loss(case.make(-1))
    for axis in case.axes
]
LOSS_IDS = [f"{case.name}-axis{axis}" for case, axis in LOSS_ROWS]
METRIC_ROWS = [
    (case, axis)
    for case in CASES
    if not is_loss(case.make(-1))
    for axis in case.axes
]
METRIC_IDS = [f"{case.name}-axis{axis}" for case, axis in METRIC_ROWS]
BAD_VALUES = [float("nan"), float("inf"), float("-inf")]
MASKED_VALUES = [float("nan"), float("inf"), float("-inf"), 1e30]
AT = (1, 3)  # The item that holds the bad value: list 1, item 3.


def lists(case, num_lists=4, n=7):
    """``(y, p)``, lists along the last axis; relevance lists hold a
    positive and a negative besides item `AT`."""
    rng = np.random.default_rng(0)
    p = rng.normal(size=(num_lists, n)).astype("float32")
    if case.labels == "real":
        y = rng.normal(size=(num_lists, n)).astype("float32")
    else:
        y = (rng.random((num_lists, n)) < 0.4).astype("float32")
        y[:, 0], y[:, 1] = 1.0, 0.0
    return y, p


def layout(x, axis):
    return x if axis == -1 else np.ascontiguousarray(x.T)


def at(axis):
    return AT if axis == -1 else AT[::-1]


def loss_and_grad(loss, y_true, p, compiled):
    """The loss and its gradient with respect to the scores ``p``."""

    def run(p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(y_true, p)
        return value, tape.gradient(value, p)

    if compiled:
        run = tf.function(run)
    value, grad = run(tf.constant(p))
    # An exact ranker has no gradient: zero.
    grad = np.zeros_like(p) if grad is None else np.asarray(grad)
    return float(value), grad


# -- A non-finite unmasked score gives a NaN loss or a ValueError. ----------


@pytest.mark.parametrize("bad", BAD_VALUES, ids=str)
@pytest.mark.parametrize("case, axis", LOSS_ROWS, ids=LOSS_IDS)
def test_non_finite_score_gives_nan_or_raises(case, axis, bad):
    y, p = lists(case)
    p[AT] = bad
    loss = case.make(axis)
    with pytest.raises(ValueError, match="`y_pred` should hold finite"):
        loss(layout(y, axis), layout(p, axis))
    value, _ = loss_and_grad(loss, layout(y, axis), layout(p, axis), True)
    assert np.isnan(value)


@pytest.mark.parametrize("case, axis", LOSS_ROWS, ids=LOSS_IDS)
def test_nan_label_gives_nan_or_raises(case, axis):
    # Defects 12 (relevance losses: a NaN label was padding) and 13
    # (SpearmanLoss: NaN, no error, eagerly).
    y, p = lists(case)
    y[AT] = float("nan")
    loss = case.make(axis)
    with pytest.raises(ValueError, match="`y_true` should hold no NaN"):
        loss(layout(y, axis), layout(p, axis))
    value, _ = loss_and_grad(loss, layout(y, axis), layout(p, axis), True)
    assert np.isnan(value)


def test_spearman_l1_term_with_non_finite_input():
    y, p = lists(CASES[0])
    loss = losses.SpearmanLoss(axis=-1, l1_weight=0.5, ranker="sigmoid:0.1")
    p[AT] = float("inf")
    assert np.isnan(loss_and_grad(loss, y, p, True)[0])
    p[AT], y[AT] = 0.0, float("nan")
    assert np.isnan(loss_and_grad(loss, y, p, True)[0])


# -- A masked or padded item reaches nothing. --------------------------------


def _padded(case, axis, how, value, label_value=None):
    y, p = lists(case)
    mask = np.ones_like(y, dtype=bool)
    if how == "mask":
        mask[AT] = False
    else:  # A relevance label < 0.
        y[AT] = -1.0
    p[AT] = value
    if label_value is not None:
        y[AT] = label_value
    y, p, mask = (layout(x, axis) for x in (y, p, mask))
    return ({"labels": y, "mask": mask} if how == "mask" else y), p


PAD_ROWS = [
    (case, axis, how)
    for case, axis in LOSS_ROWS
    for how in (["mask", "label"] if case.labels == "relevance" else ["mask"])
]
PAD_IDS = [f"{c.name}-axis{a}-{h}" for c, a, h in PAD_ROWS]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("value", MASKED_VALUES, ids=str)
@pytest.mark.parametrize("case, axis, how", PAD_ROWS, ids=PAD_IDS)
def test_padded_item_reaches_no_value_or_gradient(
    case, axis, how, value, compiled
):
    # Defect 4: a NaN at a masked position gave NaN gradients.
    loss = case.make(axis)
    reference, ref_grad = loss_and_grad(
        loss, *_padded(case, axis, how, 0.25), compiled
    )
    got, grad = loss_and_grad(loss, *_padded(case, axis, how, value), compiled)
    assert np.isfinite(got) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
    assert grad[at(axis)] == 0.0


@pytest.mark.parametrize("case, axis", LOSS_ROWS, ids=LOSS_IDS)
def test_masked_label_reaches_nothing(case, axis):
    loss = case.make(axis)
    reference = loss_and_grad(loss, *_padded(case, axis, "mask", 0.25), True)
    got = loss_and_grad(
        loss, *_padded(case, axis, "mask", 0.25, float("nan")), True
    )
    np.testing.assert_allclose(got[0], reference[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], reference[1], rtol=1e-4, atol=1e-6)


def test_spearman_l1_term_ignores_masked_items():
    # The L1 term reads scores and labels: a masked NaN in either stays out.
    y, p = lists(CASES[0])
    mask = np.ones_like(y, dtype=bool)
    mask[AT] = False
    loss = losses.SpearmanLoss(axis=-1, l1_weight=0.5, ranker="sigmoid:0.1")
    reference = loss_and_grad(loss, {"labels": y, "mask": mask}, p, True)
    y[AT], p[AT] = float("nan"), float("nan")
    got = loss_and_grad(loss, {"labels": y, "mask": mask}, p, True)
    assert np.isfinite(got[0]) and np.all(np.isfinite(got[1]))
    np.testing.assert_allclose(got[0], reference[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], reference[1], rtol=1e-5, atol=1e-7)


EMBEDDING_CASES = [
    case
    for case in CASES
    if is_loss(case.make(-1))
    and getattr(case.make(-1), "accepts_embeddings", True)
]


@pytest.mark.parametrize("value", MASKED_VALUES, ids=str)
@pytest.mark.parametrize("case", EMBEDDING_CASES, ids=lambda c: c.name)
def test_padded_embedding_reaches_no_value_or_gradient(case, value):
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(8, 5)).astype("float32")
    labels = np.array([0, 0, 1, 1, 2, 2, 0, -1], dtype="float32")
    loss = case.make(-1)
    reference = loss_and_grad(loss, labels, embeddings, True)
    embeddings[-1] = value
    got, grad = loss_and_grad(loss, labels, embeddings, True)
    assert np.isfinite(got) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(got, reference[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-4, atol=1e-6)
    assert np.all(grad[-1] == 0.0)
    # Unpadded, the same embedding makes the loss NaN (or raises eagerly).
    if not np.isfinite(value):
        labels[-1] = 1.0
        with pytest.raises(ValueError, match="`y_pred` should hold finite"):
            loss(labels, embeddings)
        assert np.isnan(loss_and_grad(loss, labels, embeddings, True)[0])


# -- Rankers, and the losses over each ranker. -------------------------------


class ToySorter(keras.Model):
    """A stand-in sorter (sigmoid ranks / n): length-generic or fixed."""

    def __init__(self, seq_len=None, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len

    def call(self, scores):
        n = keras.ops.cast(keras.ops.shape(scores)[-1], scores.dtype)
        return SigmoidRanker(0.05)(scores) / n


RANKERS = {
    "exact": ExactRanker,
    "sigmoid": lambda: SigmoidRanker(0.1),
    "sigmoid_relative": lambda: SigmoidRanker(0.1, relative=True),
    "neuralsort": lambda: NeuralSortRanker(0.5),
    "sorter_generic": lambda: SorterRanker(ToySorter()),
    "sorter_fixed": lambda: SorterRanker(ToySorter(12)),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("value", MASKED_VALUES, ids=str)
@pytest.mark.parametrize("name", sorted(RANKERS))
def test_masked_item_reaches_no_rank_or_gradient(name, value, compiled):
    ranker = RANKERS[name]()
    x = np.random.default_rng(2).normal(size=(3, 7)).astype("float32")
    mask = np.ones_like(x, dtype=bool)
    mask[AT] = False
    weights = tf.constant(np.arange(1.0, 8.0, dtype="float32"))

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            ranks = ranker(x, mask=mask)
            total = tf.reduce_sum(ranks * weights)
        grad = tape.gradient(total, x)
        return ranks, tf.zeros_like(x) if grad is None else grad

    if compiled:
        run = tf.function(run)
    reference = [np.asarray(t) for t in run(tf.constant(x))]
    x[AT] = value
    ranks, grad = (np.asarray(t) for t in run(tf.constant(x)))
    assert np.all(np.isfinite(ranks)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(ranks, reference[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-4, atol=1e-6)
    assert ranks[AT] == 0.0 and grad[AT] == 0.0


LOSS_MAKERS = {
    "spearman": lambda r: losses.SpearmanLoss(axis=-1, ranker=r),
    "map": lambda r: losses.MeanAveragePrecisionLoss(axis=-1, ranker=r),
    "recall": lambda r: losses.RecallAtKLoss(k=(1, 2), ranker=r),
    "triplet": lambda r: losses.RankTripletLoss(ranker=r),
    "rank": lambda r: losses.RankLoss(ranker=r),
}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=str)
@pytest.mark.parametrize("ranker", sorted(RANKERS))
@pytest.mark.parametrize("loss_name", sorted(LOSS_MAKERS))
def test_losses_over_every_ranker_ignore_masked_items(loss_name, ranker, value):
    case = CASES[0] if loss_name == "spearman" else CASES[1]
    loss = LOSS_MAKERS[loss_name](RANKERS[ranker]())
    reference = loss_and_grad(loss, *_padded(case, -1, "mask", 0.25), True)
    got, grad = loss_and_grad(loss, *_padded(case, -1, "mask", value), True)
    assert np.isfinite(got) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(got, reference[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-4, atol=1e-6)


# -- Defect 14: a tf.Variable as y_pred. -------------------------------------


@pytest.mark.parametrize("case, axis", LOSS_ROWS, ids=LOSS_IDS)
def test_tf_variable_scores(case, axis):
    y, p = layout(lists(case)[0], axis), layout(lists(case)[1], axis)
    loss = case.make(axis)
    np.testing.assert_allclose(
        float(loss(y, tf.Variable(p))), float(loss(y, p)), rtol=1e-6
    )


@pytest.mark.parametrize("case, axis", METRIC_ROWS, ids=METRIC_IDS)
def test_tf_variable_metric_inputs(case, axis):
    y, p = layout(lists(case)[0], axis), layout(lists(case)[1], axis)
    metric = case.make(axis)
    metric.update_state(tf.Variable(y), tf.Variable(p))
    expected = case.make(axis)
    expected.update_state(y, p)
    np.testing.assert_allclose(
        float(metric.result()), float(expected.result()), rtol=1e-6
    )


# -- Defect 17: non-finite hyperparameters. ----------------------------------


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: losses.RankTripletLoss(margin=v), "margin"),
        (lambda v: losses.SpearmanLoss(l1_weight=v), "l1_weight"),
        (lambda v: losses.RecallAtKLoss(temperature=v), "temperature"),
        (lambda v: SigmoidRanker(temperature=v), "temperature"),
        (lambda v: NeuralSortRanker(temperature=v), "temperature"),
    ],
    ids=["margin", "l1_weight", "recall_temperature", "sigmoid", "neuralsort"],
)
@pytest.mark.parametrize("value", BAD_VALUES, ids=str)
def test_non_finite_hyperparameter_is_refused(make, name, value):
    with pytest.raises(ValueError, match=f"`{name}` should be .*finite"):
        make(value)


# -- Metrics: defects 12, 15 and 18. -----------------------------------------


def _metric_value(metric, y, p, sample_weight=None):
    metric.update_state(y, p, sample_weight=sample_weight)
    return float(metric.result())


RELEVANCE_METRIC_ROWS = [
    (c, a) for c, a in METRIC_ROWS if c.labels == "relevance"
]


@pytest.mark.parametrize(
    "case, axis",
    RELEVANCE_METRIC_ROWS,
    ids=[f"{c.name}-axis{a}" for c, a in RELEVANCE_METRIC_ROWS],
)
def test_nan_relevance_label_makes_the_metric_nan(case, axis):
    # Defect 12: a NaN label was padding (MAP 0.8667, RecallAtK 0.6667).
    y, p = lists(case)
    y[AT] = float("nan")
    value = _metric_value(case.make(axis), layout(y, axis), layout(p, axis))
    assert np.isnan(value)
    # Masked, the NaN label takes no part.
    mask = np.ones_like(y, dtype=bool)
    mask[AT] = False
    masked = _metric_value(
        case.make(axis),
        {"labels": layout(y, axis), "mask": layout(mask, axis)},
        layout(p, axis),
    )
    assert np.isfinite(masked)


@pytest.mark.parametrize(
    "case",
    [c for c, a in METRIC_ROWS if a == -1],
    ids=lambda c: c.name,
)
def test_empty_batch_leaves_the_metric_at_zero(case):
    # Defect 15: SpearmanCorrelation(axis=-1) crashed on an empty batch.
    metric = case.make(-1)
    empty = np.zeros((0, 5), "float32")
    assert _metric_value(metric, empty, empty) == 0.0
    y, p = lists(case)
    metric.update_state(y, p)
    after = float(metric.result())
    fresh = case.make(-1)
    assert after == pytest.approx(_metric_value(fresh, y, p))


@pytest.mark.parametrize("which", ["all", "one"])
@pytest.mark.parametrize("case, axis", METRIC_ROWS, ids=METRIC_IDS)
def test_nan_sample_weight_makes_the_metric_nan(case, axis, which):
    # Defect 18: all-NaN weights gave 0.0 silently.
    y, p = lists(case)
    num = y.shape[0] if axis == -1 else y.shape[1]
    weight = np.ones(num, "float32")
    if which == "all":
        weight[:] = np.nan
    else:
        weight[1] = np.nan
    value = _metric_value(
        case.make(axis), layout(y, axis), layout(p, axis), weight
    )
    assert np.isnan(value)


def test_spearman_correlation_nan_weight_is_documented():
    assert "NaN weight" in metrics.SpearmanCorrelation.__doc__


class BlindSorter(keras.Model):
    """A sorter that hides NaN: it ranks ``nan_to_num(scores)``."""

    seq_len = None

    def call(self, scores):
        n = keras.ops.cast(keras.ops.shape(scores)[-1], scores.dtype)
        safe = keras.ops.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=-1.0)
        return SigmoidRanker(0.05)(safe) / n


def test_terminate_on_nan_fires_whatever_the_sorter_returns():
    # Defect 2, loss side: a sorter that gives finite ranks for a NaN score
    # no longer hides the NaN from TerminateOnNaN.
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1)
    x[5, 0] = np.nan
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    loss = losses.SpearmanLoss(ranker=SorterRanker(BlindSorter()))
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(
        x,
        y,
        batch_size=64,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert np.isnan(history.history["loss"][0])
    assert len(history.history["loss"]) == 1
