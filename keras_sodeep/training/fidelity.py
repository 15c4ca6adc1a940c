"""How close a sorter or ranker comes to the exact ranks.

The protocol is the paper's Table 1 (lists of the ``"paper"`` mix, the
standard evaluation seed), plus rescaled lists, a sweep of lengths and
the held-out distributions of `keras_sodeep.synthetic.held_out_lists`.
"""

import keras
import numpy as np

from keras_sodeep import ranking, synthetic
from keras_sodeep._checks import check_int
from keras_sodeep.synthetic import EVALUATION_SEED, evaluation_lists

LENGTHS = (10, 50, 100, 200, 500, 1000)
"""List lengths at which length-generic rankers are evaluated."""

# ---------------------------------------------------------------------------
# Fidelity.
# ---------------------------------------------------------------------------


def fidelity_figures(predicted, target):
    """The fidelity figures of predicted normalized ranks against exact ones.

    For lists of ``n`` items, with ``r_hat = n * predicted`` and
    ``r = n * target``:

    ```
    l1             = mean over lists and items of |r_hat_i - r_i| / n
    spearman       = mean over lists of 1 - 6 sum_i (r_hat_i - r_i)^2
                                                   / (n (n^2 - 1))
    exact_fraction = fraction of lists where every |r_hat_i - r_i| < 1/2
    ```

    ``spearman`` is Spearman's formula with the predicted ranks in place of
    the ranks of the predictions: it equals ``scipy.stats.spearmanr`` of the
    predictions when they are a permutation of ``1..n``, and measures their
    values, not only their order. A list counts as ranked exactly when
    rounding every predicted rank gives its true rank (for a list without
    ties, this implies that the predictions sort the list correctly).

    Args:
        predicted: array-like ``(num_lists, n)``, predicted ``rank / n``.
        target: array-like ``(num_lists, n)``, exact ``rank / n``.

    Returns:
        A dict with float entries ``l1``, ``spearman`` and
        ``exact_fraction``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.training import fidelity_figures
    >>> target = np.array([[1, 2, 3, 4]]) / 4
    >>> figures = fidelity_figures(np.array([[1.2, 2, 3, 3.8]]) / 4, target)
    >>> {k: round(v, 4) for k, v in figures.items()}
    {'l1': 0.025, 'spearman': 0.992, 'exact_fraction': 1.0}
    """
    predicted = np.asarray(predicted, dtype="float64")
    target = np.asarray(target, dtype="float64")
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ValueError(
            "`predicted` and `target` should have the same shape "
            "(num_lists, n). Received: "
            f"predicted.shape={predicted.shape}, target.shape={target.shape}"
        )
    n = predicted.shape[-1]
    if n < 2:
        raise ValueError(f"Lists should have at least 2 items. Received: {n}")
    diff = (predicted - target) * n
    spearman = 1.0 - 6.0 * np.sum(diff**2, axis=-1) / (n * (n * n - 1.0))
    return {
        "l1": float(np.mean(np.abs(diff)) / n),
        "spearman": float(np.mean(spearman)),
        "exact_fraction": float(np.mean(np.all(np.abs(diff) < 0.5, -1))),
    }


def _normalized_predictions(model, is_ranker, scores, batch_size):
    n = scores.shape[-1]
    out = model.predict(scores, batch_size=batch_size, verbose=0)
    out = np.asarray(out, dtype="float64")
    return out / n if is_ranker else out


def _padded_predictions(sorter, scores, batch_size):
    """A fixed-length sorter's ``rank / n`` of shorter lists.

    Each list is padded to the sorter's ``seq_len`` and the padding masked,
    as `keras_sodeep.ranking.SorterRanker` does inside a loss.
    """
    num_lists, n = scores.shape
    padded = np.zeros((num_lists, sorter.seq_len), dtype="float32")
    padded[:, :n] = scores
    mask = np.zeros_like(padded, dtype=bool)
    mask[:, :n] = True
    out = [
        np.asarray(
            sorter(
                padded[i : i + batch_size],
                mask=mask[i : i + batch_size],
                training=False,
            )
        )
        for i in range(0, num_lists, batch_size)
    ]
    return np.concatenate(out)[:, :n].astype("float64")


def held_out_figures(predict, seq_len, num_lists, seed, paper_l1):
    """The L1 on each held-out distribution and the worst of them.

    Args:
        predict: a function from scores ``(num_lists, seq_len)`` to
            predicted normalized ranks of the same shape.
        seq_len: int, the list length.
        num_lists: int, lists per distribution.
        seed: int, the seed of `keras_sodeep.synthetic.held_out_lists`.
        paper_l1: float, the L1 on the ``"paper"`` mix, for the ratio.

    Returns:
        A dict: ``l1_held_out``, a dict from each name of
        `keras_sodeep.synthetic.HELD_OUT` to its L1; ``held_out_worst``,
        the name of the distribution with the largest L1;
        ``l1_held_out_worst``, that L1; ``held_out_worst_ratio``, that L1
        over ``paper_l1`` (``None`` when ``paper_l1`` is 0).
    """
    by_name = {}
    for name in synthetic.HELD_OUT:
        scores, target = synthetic.held_out_lists(
            name, num_lists, seq_len, seed
        )
        by_name[name] = float(np.mean(np.abs(predict(scores) - target)))
    worst = max(by_name, key=by_name.get)
    return {
        "l1_held_out": by_name,
        "held_out_worst": worst,
        "l1_held_out_worst": by_name[worst],
        "held_out_worst_ratio": (
            by_name[worst] / paper_l1 if paper_l1 > 0 else None
        ),
    }


def evaluate_ranker(
    ranker,
    seq_len=None,
    num_lists=10000,
    seed=EVALUATION_SEED,
    batch_size=250,
    lengths=None,
    length_lists=1000,
    held_out_lists=None,
):
    """Measures a sorter or a ranker with the paper's Table 1 protocol.

    Draws ``num_lists`` lists of ``seq_len`` items from the ``"paper"`` mix
    with `keras_sodeep.synthetic.evaluation_lists` (the standard evaluation
    lists with the default seed), compares the predicted normalized
    ranks with the exact ones (`fidelity_figures`), and repeats the L1 on
    the same lists mapped by ``x -> 1000 x + 50`` and ``x -> 0.001 x``. A
    ranker's output (ranks in ``[1, n]``) is divided by ``n``; a sorter's
    output is ``rank / n`` already.

    Also the L1 at each length in ``lengths`` on ``length_lists`` lists
    of that length (fewer lists than at ``seq_len``, since a pairwise
    ranker costs O(n^2) per list). A fixed-length sorter ranks the shorter
    lists padded to its ``seq_len`` and masked, as inside a loss.

    Then the L1 on ``held_out_lists`` lists of ``seq_len`` items from each
    held-out distribution of `keras_sodeep.synthetic.HELD_OUT` (heavy
    tails, skew, clusters, near-ties, ...: none is in the training mix),
    and the worst of them with its ratio to the paper-mix L1
    (`held_out_figures`).

    Args:
        ranker: a sorter, a ``keras_sodeep.ranking.Ranker``, or a
            specification for ``keras_sodeep.ranking.get`` (a preset folder
            path or name, ``"sigmoid:0.1"``, ``"untrained:gru"``, ...).
        seq_len: int, the list length. Defaults to the sorter's
            ``seq_len``, else 100.
        num_lists: int, the number of lists. Defaults to 10,000.
        seed: int, the seed of the lists. Defaults to
            `keras_sodeep.synthetic.EVALUATION_SEED`.
        batch_size: int, lists per forward pass at length 100; at length
            ``n`` it is scaled by ``100 / n``. Defaults to 250.
        lengths: list of ints, the lengths of the sweep; ``()`` skips it.
            Defaults to ``None``: `LENGTHS`, those below ``seq_len`` for a
            fixed-length sorter.
        length_lists: int, lists per length of the sweep. Defaults to
            1,000.
        held_out_lists: int, lists per held-out distribution; ``0`` skips
            them. Defaults to ``None``: ``min(num_lists, 1000)``.

    Returns:
        A dict: ``l1``, ``spearman``, ``exact_fraction`` (see
        `fidelity_figures`), ``l1_scaled_up`` (``1000 x + 50``),
        ``l1_scaled_down`` (``0.001 x``), and ``l1_by_length``, a dict from
        the length (a str, as in JSON) to the L1, when a sweep ran; and,
        unless ``held_out_lists=0``, the entries of `held_out_figures`.

    Example:

    >>> from keras_sodeep.ranking import SigmoidRanker
    >>> from keras_sodeep.training import evaluate_ranker
    >>> figures = evaluate_ranker(SigmoidRanker(0.1), num_lists=20,
    ...                           lengths=(), held_out_lists=0)
    >>> sorted(figures)
    ['exact_fraction', 'l1', 'l1_scaled_down', 'l1_scaled_up', 'spearman']
    >>> figures = evaluate_ranker(SigmoidRanker(0.1), num_lists=20,
    ...                           lengths=())
    >>> figures["held_out_worst"], sorted(figures["l1_held_out"])[:3]
    ('near_ties', ['cauchy', 'clusters', 'cosine'])
    """
    if held_out_lists is None:
        held_out_lists = min(num_lists, 1000)
    else:
        held_out_lists = check_int(held_out_lists, "held_out_lists", 0)
    if not isinstance(ranker, keras.Model):
        ranker = ranking.get(ranker)
        if isinstance(ranker, ranking.SorterRanker):
            ranker = ranker.sorter  # a sorter's own output is rank / n
    is_ranker = isinstance(ranker, ranking.Ranker)
    if not is_ranker and not hasattr(ranker, "seq_len"):
        raise TypeError(
            "`ranker` should be a Ranker or a sorter (a keras.Model with a "
            f"`seq_len` attribute). Received: ranker={ranker!r}"
        )
    fixed = None if is_ranker else ranker.seq_len
    if seq_len is None:
        seq_len = fixed or 100
    if fixed is not None and seq_len != fixed:
        raise ValueError(
            f"This sorter ranks lists of length {fixed} only. "
            f"Received: seq_len={seq_len}"
        )
    if lengths is None:
        lengths = [n for n in LENGTHS if fixed is None or n < fixed]
    elif fixed is not None and any(int(n) > fixed for n in lengths):
        raise ValueError(
            f"This sorter ranks lists of at most {fixed} items (shorter "
            "ones padded and masked); `lengths` should not exceed it. "
            f"Received: lengths={lengths}"
        )
    model = ranker
    if is_ranker:
        inputs = keras.Input((None,))
        model = keras.Model(inputs, ranker(inputs))

    def batch_for(n):
        return max(1, batch_size * 100 // n)

    scores, target = evaluation_lists(num_lists, seq_len, seed)
    figures = {}
    bs = batch_for(seq_len)
    predicted = _normalized_predictions(model, is_ranker, scores, bs)
    figures.update(fidelity_figures(predicted, target))
    for key, scaled in (
        ("l1_scaled_up", scores * 1000.0 + 50.0),
        ("l1_scaled_down", scores * 0.001),
    ):
        predicted = _normalized_predictions(model, is_ranker, scaled, bs)
        figures[key] = float(np.mean(np.abs(predicted - target)))
    if lengths:
        figures["l1_by_length"] = {}
        for n in lengths:
            scores, target = evaluation_lists(length_lists, int(n), seed)
            if fixed is not None and int(n) < fixed:
                predicted = _padded_predictions(model, scores, bs)
            else:
                predicted = _normalized_predictions(
                    model, is_ranker, scores, batch_for(n)
                )
            figures["l1_by_length"][str(n)] = float(
                np.mean(np.abs(predicted - target))
            )
    if held_out_lists:
        figures.update(
            held_out_figures(
                lambda x: _normalized_predictions(model, is_ranker, x, bs),
                seq_len,
                held_out_lists,
                seed,
                figures["l1"],
            )
        )
    return figures


def fidelity_table(figures, name="ranker", seq_len=100, num_lists=None):
    """Formats `evaluate_ranker` figures as Markdown tables.

    Args:
        figures: the dict returned by `evaluate_ranker`.
        name: str, the label of the row. Defaults to ``"ranker"``.
        seq_len: int, the list length of the main figures. Defaults to 100.
        num_lists: int or ``None``, the number of lists, shown if given.

    Returns:
        A str: one table of the main figures, then, when the figures hold
        them, one of the held-out distributions (`held_out_table`) and one
        of the L1 by length.

    Example:

    >>> from keras_sodeep.training import fidelity_table
    >>> print(fidelity_table({"l1": 0.035, "spearman": 0.99,
    ...                       "exact_fraction": 0.0, "l1_scaled_up": 0.0,
    ...                       "l1_scaled_down": 0.25}, "sigmoid:0.1"))
    | ranker | n | L1 | Spearman rho | exact lists | L1 (1000x+50) | ...
    |---|---|---|---|---|---|---|
    | sigmoid:0.1 | 100 | 0.0350 | 0.9900 | 0.00% | 0.0000 | 0.2500 |
    """
    header = ["ranker", "n"]
    row = [name, str(seq_len)]
    if num_lists is not None:
        header.append("lists")
        row.append(str(num_lists))
    header += [
        "L1",
        "Spearman rho",
        "exact lists",
        "L1 (1000x+50)",
        "L1 (0.001x)",
    ]
    row += [
        f"{figures['l1']:.4f}",
        f"{figures['spearman']:.4f}",
        f"{100 * figures['exact_fraction']:.2f}%",
        f"{figures['l1_scaled_up']:.4f}",
        f"{figures['l1_scaled_down']:.4f}",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| " + " | ".join(row) + " |",
    ]
    if figures.get("l1_held_out"):
        lines += ["", held_out_table(figures)]
    by_length = figures.get("l1_by_length")
    if by_length:
        lines += ["", "| n | L1 |", "|---|---|"]
        lines += [f"| {n} | {value:.4f} |" for n, value in by_length.items()]
    return "\n".join(lines)


def held_out_table(figures):
    """Formats the held-out figures of `evaluate_ranker` as Markdown.

    Args:
        figures: a dict with the entries of `held_out_figures` and ``l1``.

    Returns:
        A str: the L1 per held-out distribution and its ratio to the
        paper-mix L1, then the worst.

    Example:

    >>> from keras_sodeep.training import held_out_table
    >>> print(held_out_table({"l1": 0.01, "l1_held_out": {"wide": 0.02},
    ...                       "held_out_worst": "wide",
    ...                       "l1_held_out_worst": 0.02,
    ...                       "held_out_worst_ratio": 2.0}))
    | held-out lists | L1 | / paper-mix L1 |
    |---|---|---|
    | wide | 0.0200 | 2.00x |
    | worst: wide | 0.0200 | 2.00x |
    """

    def ratio(value):
        if not figures["l1"] > 0:
            return "-"
        return f"{value / figures['l1']:.2f}x"

    lines = ["| held-out lists | L1 | / paper-mix L1 |", "|---|---|---|"]
    for name, value in figures["l1_held_out"].items():
        lines.append(f"| {name} | {value:.4f} | {ratio(value)} |")
    worst = figures["l1_held_out_worst"]
    lines.append(
        f"| worst: {figures['held_out_worst']} | {worst:.4f} | {ratio(worst)} |"
    )
    return "\n".join(lines)
