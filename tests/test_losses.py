import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from oracles import smooth_ranks_oracle
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score

from keras_sodeep import PresetRanker, pretrained
from keras_sodeep.losses import (
    MeanAveragePrecisionLoss,
    RankingLoss,
    RankLoss,
    RankTripletLoss,
    RecallAtKLoss,
    SpearmanLoss,
)
from keras_sodeep.ranking import (
    NeuralSortRanker,
    SigmoidRanker,
    SorterRanker,
)

SHARP = 1e-4  # a temperature at which SigmoidRanker gives exact ranks


class SigmoidSorter(keras.Model):
    """A stand-in sorter: normalized SigmoidRanker ranks, one weight.

    It has the `Sorter` interface (`seq_len`, `call(scores, mask=None)` ->
    rank / n on (batch, length) input). Its weight multiplies the scores;
    setting it to -1 reverses the ranking, which shows whether the weight
    was saved.
    """

    def __init__(self, seq_len=None, temperature=0.3, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len
        self.temperature = temperature
        self.scale = self.add_weight(shape=(), initializer="ones", name="s")

    def call(self, scores, mask=None):
        n = keras.ops.cast(keras.ops.shape(scores)[-1], scores.dtype)
        ranks = SigmoidRanker(self.temperature)(scores * self.scale)
        return ranks / n

    def get_config(self):
        return {"seq_len": self.seq_len, "temperature": self.temperature}


keras.saving.register_keras_serializable(package="keras_sodeep_tests")(
    SigmoidSorter
)


# ---------------------------------------------------------------------------
# Oracles (NumPy / scipy / scikit-learn).
# ---------------------------------------------------------------------------


def spearman_oracle(y, p):
    """Eq. 4 with exact ranks: mean ((r_hat - r) / n)^2."""
    n = len(y)
    d = rankdata(-p) - rankdata(-y)
    return np.mean((d / n) ** 2)


def ap_oracle(labels, scores):
    return average_precision_score(labels, scores)


def hit_rate_oracle(labels, scores, k):
    """1 if some positive has fewer than k negatives ranked above it."""
    negatives = scores[labels == 0]
    best = scores[labels == 1].max()
    return float(np.sum(negatives > best) < k)


def triplet_oracle(labels, scores, margin):
    ranks = rankdata(-scores)
    hardest = ranks[labels == 0].min()
    hinge = np.maximum(0.0, margin + ranks[labels == 1] - hardest)
    return hinge.mean() / len(scores)


def rank_loss_oracle(labels, scores):
    return rankdata(-scores)[labels == 1].sum() / len(scores)


def distinct(rng, shape):
    return rng.permutation(np.prod(shape)).reshape(shape).astype("float32")


def relevance(rng, shape):
    labels = (rng.random(shape) < 0.35).astype("float32")
    labels[..., 0] = 1.0  # every list has a positive...
    labels[..., 1] = 0.0  # ...and a negative
    return labels


# ---------------------------------------------------------------------------
# SpearmanLoss.
# ---------------------------------------------------------------------------


@pytest.mark.backend
def test_spearman_is_one_minus_rho_scaled(rng):
    y = rng.normal(size=30).astype("float32")
    p = (y + rng.normal(size=30)).astype("float32")
    loss = float(SpearmanLoss(ranker=SigmoidRanker(SHARP))(y, p))
    rho = spearmanr(y, p).statistic
    n = 30
    # 1 - rho = 6 sum d^2 / (n (n^2 - 1)) and eq. 4 is sum d^2 / n^3.
    np.testing.assert_allclose(
        loss, (1 - rho) * (n**2 - 1) / (6 * n**2), rtol=1e-4
    )


@pytest.mark.backend
def test_spearman_hand_case_and_ties():
    loss = SpearmanLoss(ranker=SigmoidRanker(SHARP))
    # Targets tie: target ranks (1.5, 1.5, 3); predicted ranks (3, 1, 2).
    value = float(loss(np.array([2.0, 2.0, 0.0]), np.array([0.1, 0.9, 0.5])))
    expected = np.mean(((np.array([3, 1, 2]) - [1.5, 1.5, 3]) / 3) ** 2)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    # Tied predictions get the average rank too.
    value = float(loss(np.array([3.0, 2.0, 1.0]), np.array([0.5, 0.5, 0.1])))
    np.testing.assert_allclose(value, 2 * (0.5 / 3) ** 2 / 3, rtol=1e-4)


def test_spearman_axes_and_batches(rng):
    y = rng.normal(size=(12, 3)).astype("float32")
    p = rng.normal(size=(12, 3)).astype("float32")
    loss0 = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=0)
    per_column = [spearman_oracle(y[:, c], p[:, c]) for c in range(3)]
    np.testing.assert_allclose(loss0(y, p), np.mean(per_column), rtol=1e-4)
    loss1 = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=-1)
    per_row = [spearman_oracle(y[i], p[i]) for i in range(12)]
    np.testing.assert_allclose(loss1(y, p), np.mean(per_row), rtol=1e-4)
    # (B, 1) and (B,) are one list along the batch.
    col = spearman_oracle(y[:, 0], p[:, 0])
    np.testing.assert_allclose(loss0(y[:, :1], p[:, :1]), col, rtol=1e-4)
    np.testing.assert_allclose(loss0(y[:, 0], p[:, :1]), col, rtol=1e-4)
    np.testing.assert_allclose(loss0(y[:, 0], p[:, 0]), col, rtol=1e-4)


def test_spearman_l1_term(rng):
    y = rng.normal(size=10).astype("float32")
    p = rng.normal(size=10).astype("float32")
    value = SpearmanLoss(ranker=SigmoidRanker(SHARP), l1_weight=0.5)(y, p)
    expected = spearman_oracle(y, p) + 0.5 * np.mean(np.abs(p - y))
    np.testing.assert_allclose(value, expected, rtol=1e-4)


@pytest.mark.backend
def test_spearman_mask_drops_items(rng):
    y = rng.normal(size=(10, 2)).astype("float32")
    p = rng.normal(size=(10, 2)).astype("float32")
    mask = rng.random((10, 2)) > 0.3
    loss = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=0)
    value = loss({"labels": y, "mask": mask}, p)
    expected = np.mean(
        [spearman_oracle(y[mask[:, c], c], p[mask[:, c], c]) for c in (0, 1)]
    )
    np.testing.assert_allclose(value, expected, rtol=1e-4)


def test_spearman_sample_weight(rng):
    y = rng.normal(size=(6, 5)).astype("float32")
    p = rng.normal(size=(6, 5)).astype("float32")
    w = rng.random(6).astype("float32")
    rows = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=-1)
    per_row = np.array([spearman_oracle(y[i], p[i]) for i in range(6)])
    none = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=-1, reduction="none")
    np.testing.assert_allclose(none(y, p), per_row, rtol=1e-4)
    np.testing.assert_allclose(
        rows(y, p, sample_weight=w), np.mean(w * per_row), rtol=1e-4
    )
    # Along the batch, the weights weight the items' terms.
    items = SpearmanLoss(ranker=SigmoidRanker(SHARP), axis=0, reduction="none")
    terms = np.asarray(items(y[:, 0], p[:, 0]))
    d = rankdata(-p[:, 0]) - rankdata(-y[:, 0])
    np.testing.assert_allclose(terms, (d / 6) ** 2, rtol=1e-4, atol=1e-7)
    weighted = SpearmanLoss(ranker=SigmoidRanker(SHARP))(
        y[:, 0], p[:, 0], sample_weight=w
    )
    np.testing.assert_allclose(weighted, np.mean(w * terms), rtol=1e-4)


@pytest.mark.parametrize("n", [2, 3, 101, 1024])
def test_default_spearman_takes_any_batch_size(rng, n):
    y = rng.normal(size=n).astype("float32")
    p = rng.normal(size=n).astype("float32")
    value = float(SpearmanLoss()(y, p))
    # The default is "histogram-small-smooth:0.6": eq. 4 on the smooth
    # ranks of width 0.6 against 32 quantile groups, the groups from the
    # learned `histogram-small` sorter's rank estimates.
    assert repr(SpearmanLoss().ranker) == (
        "PresetRanker('histogram-small', smooth_width=0.6)"
    )
    estimates = np.asarray(pretrained("histogram-small")(p[None]))[0]
    ranks = 0.5 + smooth_ranks_oracle(p.astype("float64"), 32, 0.6, estimates)
    expected = np.mean(((ranks - rankdata(-y)) / n) ** 2)
    np.testing.assert_allclose(value, expected, rtol=1e-3, atol=1e-6)
    # The other losses rank with the near-exact `histogram` preset.
    assert repr(RankingLoss.default_ranker()) == "PresetRanker('histogram')"
    exact = float(SpearmanLoss(ranker="histogram")(y, p))
    expected = np.mean(((rankdata(-p) - rankdata(-y)) / n) ** 2)
    np.testing.assert_allclose(exact, expected, rtol=1e-2, atol=1e-4)


def test_default_map_loss_is_smooth_ap_of_width_0_15(rng):
    labels = (rng.random(101) < 0.15).astype("float32")
    labels[:2] = 1.0
    scores = rng.normal(size=101).astype("float32")
    value = float(MeanAveragePrecisionLoss(axis=-1)(labels[None], scores[None]))
    assert repr(MeanAveragePrecisionLoss().ranker) == (
        "PresetRanker('histogram', smooth_width=0.15)"
    )
    # Paper eqs. 5-7 on the smooth ranks, among all items and among the
    # positives, each from the NumPy transcription.
    x = scores.astype("float64")
    positive = labels > 0
    sorter = pretrained("histogram")
    estimates = np.asarray(sorter(scores[None]))[0]
    pos_estimates = np.asarray(sorter(scores[None, positive]))[0]
    ranks = 0.5 + smooth_ranks_oracle(x, 64, 0.15, estimates)
    pos_ranks = 0.5 + smooth_ranks_oracle(x[positive], 64, 0.15, pos_estimates)
    expected = 1.0 - np.mean(pos_ranks / ranks[positive])
    np.testing.assert_allclose(value, expected, rtol=1e-3)


@pytest.mark.parametrize("scale", [0.01, 100.0])
def test_default_losses_train_free_scores_at_any_scale(rng, scale):
    # The surrogate protocol in small: free scores, independent of the
    # targets, at a score scale far from 1, optimized with Adam on the
    # default losses.
    theta = tf.Variable(rng.normal(size=(4, 100)).astype("float32"))
    targets = rng.normal(size=(4, 100)).astype("float32")
    relevant = (rng.random((4, 100)) < 0.1).astype("float32")
    relevant[:, 0] = 1.0
    spearman, ap = SpearmanLoss(axis=-1), MeanAveragePrecisionLoss(axis=-1)
    optimizer = keras.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            x = scale * theta
            loss = spearman(targets[:2], x[:2]) + ap(relevant[2:], x[2:])
        grads = tape.gradient(loss, [theta])
        optimizer.apply_gradients(zip(grads, [theta]))

    for _ in range(100):
        step()
    x = theta.numpy()
    rho = [spearmanr(x[i], targets[i])[0] for i in range(2)]
    aps = [average_precision_score(relevant[i], x[i]) for i in (2, 3)]
    assert min(rho) > 0.97 and min(aps) > 0.97, (rho, aps)


def test_spearman_edge_lists_are_finite():
    loss = SpearmanLoss(ranker=SigmoidRanker(0.1))
    assert float(loss(np.ones(5), np.ones(5))) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(np.array([1.0]), np.array([3.0]))) == 0.0
    empty = {"labels": np.ones(4), "mask": np.zeros(4, bool)}
    assert float(loss(empty, np.arange(4.0))) == 0.0


# ---------------------------------------------------------------------------
# MeanAveragePrecisionLoss.
# ---------------------------------------------------------------------------


@pytest.mark.backend
def test_map_is_one_minus_exact_ap(rng):
    scores = distinct(rng, (20, 4))
    labels = relevance(rng, (4, 20)).T
    loss0 = MeanAveragePrecisionLoss(ranker=SigmoidRanker(SHARP), axis=0)
    aps = [ap_oracle(labels[:, c], scores[:, c]) for c in range(4)]
    np.testing.assert_allclose(loss0(labels, scores), 1 - np.mean(aps), 1e-4)
    loss1 = MeanAveragePrecisionLoss(ranker=SigmoidRanker(SHARP), axis=-1)
    aps = [
        ap_oracle(labels[i], scores[i]) for i in range(20) if labels[i].any()
    ]
    np.testing.assert_allclose(loss1(labels, scores), 1 - np.mean(aps), 1e-4)
    # Unbatched.
    np.testing.assert_allclose(
        loss0(labels[:, 0], scores[:, 0]),
        1 - ap_oracle(labels[:, 0], scores[:, 0]),
        rtol=1e-4,
    )


def test_map_with_sigmoid_001_is_smooth_ap():
    scores = np.array([0.30, 0.29, 0.10, 0.00], "float32")
    labels = np.array([0.0, 1.0, 1.0, 0.0])

    def sig(z):
        return 1 / (1 + math.exp(-z))

    # Smooth-AP (Brown et al. 2020, eq. 7) with tau = 0.01, term by term.
    rank_1 = 1 + sig(1.0) + sig(-19.0) + sig(-29.0)  # item 0.29, all items
    rank_1_pos = 1 + sig(-19.0)  # among positives
    rank_2 = 1 + sig(20.0) + sig(19.0) + sig(-10.0)  # item 0.10
    rank_2_pos = 1 + sig(19.0)
    smooth_ap = (rank_1_pos / rank_1 + rank_2_pos / rank_2) / 2
    loss = MeanAveragePrecisionLoss(ranker=SigmoidRanker(0.01))(labels, scores)
    np.testing.assert_allclose(loss, 1 - smooth_ap, rtol=1e-5)


@pytest.mark.backend
def test_map_masks_padding_labels_and_no_positives(rng):
    scores = distinct(rng, (3, 10))
    labels = relevance(rng, (3, 10))
    mask = rng.random((3, 10)) > 0.3
    mask[:, :2] = True
    labels[2] = 0.0  # no positive: left out
    loss = MeanAveragePrecisionLoss(ranker=SigmoidRanker(SHARP), axis=-1)
    value = loss({"labels": labels, "mask": mask}, scores)
    aps = [ap_oracle(labels[i][mask[i]], scores[i][mask[i]]) for i in (0, 1)]
    np.testing.assert_allclose(value, 1 - np.mean(aps), rtol=1e-4)
    # labels < 0 are padding too.
    padded = np.where(mask, labels, -1.0)
    np.testing.assert_allclose(loss(padded, scores), value, rtol=1e-6)
    # No positive at all: 0, not NaN.
    assert float(loss(np.zeros((3, 10)), scores)) == 0.0


def test_map_sample_weight_and_ties(rng):
    scores = distinct(rng, (5, 8))
    labels = relevance(rng, (5, 8))
    w = rng.random(5).astype("float32")
    loss = MeanAveragePrecisionLoss(ranker=SigmoidRanker(SHARP), axis=-1)
    aps = np.array([ap_oracle(labels[i], scores[i]) for i in range(5)])
    np.testing.assert_allclose(
        loss(labels, scores, sample_weight=w), np.mean(w * (1 - aps)), 1e-4
    )
    # Tied scores: eq. 6 with tie-averaged ranks.
    tied = np.array([1.0, 1.0, 0.0, 0.0], "float32")
    lab = np.array([1.0, 0.0, 1.0, 0.0])
    # r = (1.5, 1.5, 3.5, 3.5); among positives r+ = (1, 2).
    expected = 1 - (1 / 1.5 + 2 / 3.5) / 2
    np.testing.assert_allclose(loss(lab, tied), expected, rtol=1e-4)


# ---------------------------------------------------------------------------
# Retrieval losses on score matrices.
# ---------------------------------------------------------------------------


@pytest.mark.backend
def test_recall_at_k_is_one_minus_hit_rate(rng):
    scores = distinct(rng, (8, 12))
    labels = relevance(rng, (8, 12))
    ks = (1, 2, 4)
    loss = RecallAtKLoss(k=ks, ranker=SigmoidRanker(SHARP), temperature=0.01)
    hits = [
        np.mean([hit_rate_oracle(labels[i], scores[i], k) for k in ks])
        for i in range(8)
    ]
    np.testing.assert_allclose(loss(labels, scores), 1 - np.mean(hits), 1e-4)
    np.testing.assert_allclose(
        loss(labels[0], scores[0]), 1 - hits[0], rtol=1e-4, atol=1e-6
    )
    w = rng.random(8).astype("float32")
    np.testing.assert_allclose(
        loss(labels, scores, sample_weight=w),
        np.mean(w * (1 - np.array(hits))),
        rtol=1e-4,
        atol=1e-6,
    )


def test_recall_soft_form_matches_formula():
    scores = np.array([0.9, 0.8, 0.2, 0.1], "float32")
    labels = np.array([0.0, 1.0, 0.0, 1.0])
    loss = RecallAtKLoss(k=(1, 2), ranker=SigmoidRanker(SHARP))

    def sig(z):
        return 1 / (1 + math.exp(-z))

    # Ranks among negatives: 0.8 -> 2, 0.1 -> 3.
    recall_1 = min(1.0, sig(1.5 - 2) + sig(1.5 - 3))
    recall_2 = min(1.0, sig(2.5 - 2) + sig(2.5 - 3))
    expected = 1 - (recall_1 + recall_2) / 2
    np.testing.assert_allclose(loss(labels, scores), expected, rtol=1e-4)


@pytest.mark.backend
def test_rank_triplet_and_rank_loss_match_formulas(rng):
    scores = distinct(rng, (6, 9))
    labels = relevance(rng, (6, 9))
    for margin in (1.0, 3.0):
        loss = RankTripletLoss(margin=margin, ranker=SigmoidRanker(SHARP))
        expected = np.mean(
            [triplet_oracle(labels[i], scores[i], margin) for i in range(6)]
        )
        np.testing.assert_allclose(loss(labels, scores), expected, rtol=1e-4)
    loss = RankLoss(ranker=SigmoidRanker(SHARP))
    expected = np.mean(
        [rank_loss_oracle(labels[i], scores[i]) for i in range(6)]
    )
    np.testing.assert_allclose(loss(labels, scores), expected, rtol=1e-4)
    # A perfect ranking: the triplet loss is 0, the rank loss its minimum.
    perfect = np.array([1.0, 1.0, 0.0, 0.0])
    order = np.array([4.0, 3.0, 2.0, 1.0], "float32")
    triplet = RankTripletLoss(ranker=SigmoidRanker(SHARP))
    assert float(triplet(perfect, order)) == pytest.approx(0.0, abs=1e-5)
    value = RankLoss(ranker=SigmoidRanker(SHARP))(perfect, order)
    assert float(value) == pytest.approx(3 / 4, rel=1e-5)


@pytest.mark.parametrize(
    "cls", [RecallAtKLoss, RankTripletLoss, RankLoss, MeanAveragePrecisionLoss]
)
def test_retrieval_losses_without_positives_or_negatives(cls):
    loss = cls(ranker=SigmoidRanker(0.1))
    scores = np.array([[0.3, 0.2, 0.1], [0.5, 0.5, 0.5]], "float32")
    assert float(loss(np.zeros((2, 3)), scores)) == 0.0
    value = float(loss(np.ones((2, 3)), scores))
    assert np.isfinite(value)


# ---------------------------------------------------------------------------
# Embeddings.
# ---------------------------------------------------------------------------


def embedding_case(rng):
    emb = rng.normal(size=(10, 4)).astype("float32")
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = unit @ unit.T
    return emb, labels, sim


@pytest.mark.backend
@pytest.mark.parametrize(
    "loss,oracle",
    [
        (
            MeanAveragePrecisionLoss(ranker=SigmoidRanker(SHARP)),
            lambda lab, s: 1 - ap_oracle(lab, s),
        ),
        (
            RecallAtKLoss(
                (1, 3), ranker=SigmoidRanker(SHARP), temperature=0.01
            ),
            lambda lab, s: (
                1 - np.mean([hit_rate_oracle(lab, s, k) for k in (1, 3)])
            ),
        ),
        (
            RankTripletLoss(2.0, ranker=SigmoidRanker(SHARP)),
            lambda lab, s: triplet_oracle(lab, s, 2.0),
        ),
        (RankLoss(ranker=SigmoidRanker(SHARP)), rank_loss_oracle),
    ],
    ids=["map", "recall", "triplet", "rank"],
)
def test_embeddings_rank_the_others_by_cosine(rng, loss, oracle):
    emb, labels, sim = embedding_case(rng)
    per_query = []
    for i in range(10):
        others = np.arange(10) != i
        lab = (labels[others] == labels[i]).astype(float)
        per_query.append(oracle(lab, sim[i, others]))
    np.testing.assert_allclose(loss(labels, emb), np.mean(per_query), 1e-4)
    np.testing.assert_allclose(
        loss(labels[:, None].astype("float32"), emb),
        np.mean(per_query),
        rtol=1e-4,
    )
    # A padded sample (label -1) takes no part.
    padded = labels.copy()
    padded[0] = -1
    keep = np.arange(1, 10)
    expected = []
    for i in keep:
        others = keep[keep != i]
        lab = (labels[others] == labels[i]).astype(float)
        if lab.any():
            expected.append(oracle(lab, sim[i, others]))
    np.testing.assert_allclose(loss(padded, emb), np.mean(expected), 1e-4)


# ---------------------------------------------------------------------------
# Gradients: one step on the scores improves the exact metric.
# ---------------------------------------------------------------------------


def _rankers():
    return {
        "sigmoid": SigmoidRanker(0.3),
        "neuralsort": NeuralSortRanker(0.3),
        "sorter": SorterRanker(SigmoidSorter(seq_len=40, temperature=0.3)),
    }


def _exact_metric(name, labels, scores):
    if name == "spearman":
        return spearmanr(labels, scores).statistic
    if name == "map":
        return ap_oracle(labels, scores)
    if name == "recall":
        # Smooth, so that one step shows: mean over k of the hit rate.
        return np.mean([hit_rate_oracle(labels, scores, k) for k in (1, 2, 4)])
    if name == "triplet":
        return -triplet_oracle(labels, scores, 1.0)
    return -rank_loss_oracle(labels, scores)


LOSSES = {
    "spearman": lambda r: SpearmanLoss(ranker=r),
    "map": lambda r: MeanAveragePrecisionLoss(ranker=r),
    "recall": lambda r: RecallAtKLoss((1, 2, 4), ranker=r, temperature=0.5),
    "triplet": lambda r: RankTripletLoss(1.0, ranker=r),
    "rank": lambda r: RankLoss(ranker=r),
}


@pytest.mark.parametrize("ranker_name", ["sigmoid", "neuralsort", "sorter"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_one_gradient_step_improves_the_exact_metric(
    rng, loss_name, ranker_name
):
    n = 30
    if loss_name == "spearman":
        labels = rng.normal(size=n).astype("float32")
    else:
        labels = np.zeros(n, "float32")
        labels[rng.choice(n, 4, replace=False)] = 1.0
    scores = rng.normal(size=n).astype("float32")
    if loss_name == "recall":
        # Hit rates only move when the best positive is near the top k:
        # put the positives at ranks 5, 12, 20 and 27.
        labels = np.zeros(n, "float32")
        labels[np.argsort(-scores)[[4, 11, 19, 26]]] = 1.0
    loss = LOSSES[loss_name](_rankers()[ranker_name])
    x = tf.Variable(scores)
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    stepped = scores - 0.5 * grad / np.abs(grad).max()
    before = _exact_metric(loss_name, labels, scores)
    after = _exact_metric(loss_name, labels, stepped)
    assert after > before, (before, after)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(ValueError, match="axis"):
        SpearmanLoss(axis=1)
    with pytest.raises(ValueError, match="l1_weight"):
        SpearmanLoss(l1_weight=-1.0)
    with pytest.raises(ValueError, match="`k`"):
        RecallAtKLoss(k=0)
    with pytest.raises(ValueError, match="`k`"):
        RecallAtKLoss(k=())
    with pytest.raises(ValueError, match="temperature"):
        RecallAtKLoss(temperature=0.0)
    with pytest.raises(ValueError, match="margin"):
        RankTripletLoss(margin=-1.0)
    with pytest.raises(TypeError, match="ranker"):
        SpearmanLoss(ranker=3)


@pytest.mark.backend
def test_bad_inputs():
    loss = SpearmanLoss()
    with pytest.raises(ValueError, match="shape"):
        loss(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="labels"):
        loss({"target": np.zeros(3)}, np.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        loss({"labels": np.zeros(4), "mask": np.ones(3)}, np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        loss(np.zeros(3), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        RankLoss()(np.ones((1, 3)), np.array([[0.0, np.inf, 1.0]]))
    # A list longer than a fixed-length sorter.
    fixed = SpearmanLoss(ranker=SigmoidSorter(seq_len=8))
    with pytest.raises(ValueError, match="seq_len=8"):
        fixed(np.zeros(9), np.arange(9.0))


# ---------------------------------------------------------------------------
# Keras integration: fit, XLA, save / load, config.
# ---------------------------------------------------------------------------


def _fit_and_score(model, x, y, metric, epochs):
    before = metric(model.predict(x, verbose=0))
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    after = metric(model.predict(x, verbose=0))
    losses = history.history["loss"]
    return before, after, losses


@pytest.mark.backend
def test_fit_spearman(rng):
    x = rng.normal(size=(256, 5)).astype("float32")
    y = np.tanh(x @ np.array([1.0, -2.0, 0.5, 0.0, 1.0])).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), loss=SpearmanLoss())

    def metric(pred):
        return spearmanr(y, pred[:, 0]).statistic

    before, after, losses = _fit_and_score(model, x, y, metric, 15)
    assert losses[-1] < losses[0]
    assert after > max(before, 0.9)


def test_fit_map_multilabel_with_xla(rng):
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 3)) > 0.5).astype("float32")
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(
        keras.optimizers.Adam(0.05),
        loss=MeanAveragePrecisionLoss(ranker=SigmoidRanker(0.05)),
        jit_compile=True,
    )

    def metric(pred):
        return average_precision_score(y, pred, average="macro")

    before, after, losses = _fit_and_score(model, x, y, metric, 15)
    assert losses[-1] < losses[0]
    assert after > before + 0.1


@pytest.mark.parametrize(
    "loss",
    [
        RecallAtKLoss((1, 2, 4), ranker=SigmoidRanker(0.05)),
        RankTripletLoss(1.0, ranker=SigmoidRanker(0.05)),
        RankLoss(ranker=SigmoidRanker(0.05)),
    ],
    ids=["recall", "triplet", "rank"],
)
def test_fit_embeddings(rng, loss):
    centers = rng.normal(size=(4, 8)) * 1.0
    labels = rng.integers(0, 4, size=256)
    x = (centers[labels] + rng.normal(size=(256, 8))).astype("float32")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(0.02), loss=loss)

    def metric(emb):  # leave-one-out nearest-neighbour hit rate
        unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -np.inf)
        return np.mean(labels[sim.argmax(1)] == labels)

    before, after, losses = _fit_and_score(model, x, labels, metric, 8)
    assert losses[-1] < losses[0]
    assert after > before


@pytest.mark.backend
def test_save_and_load_keep_the_loss_and_sorter_weights(rng, tmp_path):
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    sorter = SigmoidSorter(temperature=0.1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", loss=SpearmanLoss(ranker=sorter, l1_weight=0.1))
    sorter.scale.assign(-1.0)  # reversed ranks: a different loss value
    before = model.evaluate(x, y, batch_size=32, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    after = restored.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5)
    assert isinstance(restored.loss, SpearmanLoss)
    assert float(restored.loss.ranker.scale) == -1.0


def test_fit_with_a_fixed_length_sorter_and_a_partial_batch(rng):
    x = rng.normal(size=(100, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 0.5])).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    loss = SpearmanLoss(ranker=SigmoidSorter(seq_len=64, temperature=0.1))
    model.compile(keras.optimizers.Adam(0.05), loss=loss)
    # Batches of 64 and 36: the last one is padded to the sorter's length.
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="seq_len=64"):
        model.evaluate(x, y, batch_size=100, verbose=0)


@pytest.mark.parametrize(
    "loss",
    [
        SpearmanLoss(),
        SpearmanLoss(ranker=NeuralSortRanker(0.5), axis=-1, l1_weight=0.2),
        SpearmanLoss(ranker=SigmoidSorter(seq_len=6)),
        SpearmanLoss(ranker="lstm-100"),
        MeanAveragePrecisionLoss(ranker=SigmoidRanker(0.01), axis=-1),
        RecallAtKLoss(k=(1, 5), temperature=0.5, reduction="sum"),
        RankTripletLoss(margin=2.0, name="triplet"),
        RankLoss(ranker=SorterRanker(SigmoidSorter(seq_len=None))),
    ],
)
def test_config_round_trip(loss):
    config = loss.get_config()
    restored = type(loss).from_config(config)
    assert restored.get_config() == config
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert type(again) is type(loss) and again.get_config() == config
    if isinstance(loss.ranker, PresetRanker):
        # A preset by name (and its weights' hash), loaded on first use.
        assert repr(restored.ranker) == repr(loss.ranker)
        assert not restored.ranker.built


def test_preset_names_resolve_lazily(monkeypatch):
    loss = SpearmanLoss(ranker="histogram")
    assert not loss.ranker.built  # not loaded at construction
    # An unknown name is refused at construction, with the known ones.
    with pytest.raises(ValueError, match="Known presets"):
        SpearmanLoss(ranker="some-preset")


def test_save_and_load_with_a_real_sorter(rng, tmp_path):
    from keras_sodeep.sorters import LSTMSorter

    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.normal(size=(20, 1)).astype("float32")
    keras.utils.set_random_seed(4)
    sorter = LSTMSorter(seq_len=32, units=4, num_layers=1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", loss=MeanAveragePrecisionLoss(ranker=sorter, axis=0))
    labels = (y > 0).astype("float32")
    before = model.evaluate(x, labels, batch_size=20, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    keras.utils.set_random_seed(5)  # a fresh sorter would differ
    restored = keras.saving.load_model(path)
    after = restored.evaluate(x, labels, batch_size=20, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5)


# ---------------------------------------------------------------------------
# Ranker specifications (issue 17, defects 1 and 19).
# ---------------------------------------------------------------------------


def test_analytic_string_specs_are_rankers():
    loss = SpearmanLoss(ranker="sigmoid:0.1")
    assert isinstance(loss.ranker, SigmoidRanker)
    assert loss.ranker.temperature == 0.1
    y, p = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2])
    expected = SpearmanLoss(ranker=SigmoidRanker(0.1))(y, p)
    np.testing.assert_allclose(float(loss(y, p)), float(expected))
    assert isinstance(
        MeanAveragePrecisionLoss(ranker="neuralsort:0.5").ranker,
        NeuralSortRanker,
    )
    saved = keras.saving.deserialize_keras_object(loss.get_config()["ranker"])
    assert isinstance(saved, SigmoidRanker) and saved.temperature == 0.1


def _preset_weights(name):
    from keras_sodeep import pretrained

    return [np.asarray(w) for w in pretrained(name).get_weights()]


def test_preset_name_in_tf_function_equals_the_loaded_preset(rng):
    from keras_sodeep import pretrained

    y = rng.normal(size=(4, 8)).astype("float32")
    p = rng.normal(size=(4, 8)).astype("float32")
    by_name = SpearmanLoss(ranker="cnn-100", axis=-1)
    loaded = SpearmanLoss(ranker=pretrained("cnn-100"), axis=-1)
    # The first call is traced: the preset must not be built in the graph.
    value = tf.function(lambda a, b: by_name(a, b))(y, p)
    np.testing.assert_allclose(float(value), float(loaded(y, p)), rtol=1e-5)


def test_preset_name_keeps_its_weights_in_fit_and_after_save(rng, tmp_path):
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 0.5])).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", loss=SpearmanLoss(ranker="cnn-100"))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    weights = model.loss.ranker.sorter.get_weights()
    for got, want in zip(weights, _preset_weights("cnn-100")):
        np.testing.assert_array_equal(np.asarray(got), want)
    # The same model with the loaded preset evaluates to the same loss.
    from keras_sodeep import pretrained

    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    reference.compile("sgd", loss=SpearmanLoss(ranker=pretrained("cnn-100")))
    reference.set_weights(model.get_weights())
    expected = reference.evaluate(x, y, batch_size=64, verbose=0)
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=64, verbose=0), expected, rtol=1e-5
    )
    # A .keras round trip keeps the name and loads the preset again.
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert repr(restored.loss.ranker) == "PresetRanker('cnn-100')"
    np.testing.assert_allclose(
        restored.evaluate(x, y, batch_size=64, verbose=0), expected, rtol=1e-5
    )


def test_ranker_is_keyword_only():
    with pytest.raises(ValueError, match="axis"):
        SpearmanLoss(SigmoidRanker(0.1))
    with pytest.raises(TypeError):
        RankTripletLoss(1.0, SigmoidRanker(0.1))
    assert isinstance(RankLoss(ranker=SigmoidRanker(0.1)).ranker, SigmoidRanker)
