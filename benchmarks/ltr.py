"""Learning to rank: a scoring network trained with each ranking loss.

Queries hold variable numbers of documents with graded relevance 0-4; a
small network scores each document from its features; each loss trains
it on the training queries, and NDCG@10 and MRR are measured on held-out
queries. Every loss runs on the same seeds (split, initial weights, batch
order), so the per-seed differences against listwise softmax
cross-entropy are compared: "beats" or "loses" when their mean is more
than twice its standard error away from 0, else "ties".

The generator (`make_queries`): each query draws ``n`` documents,
``n`` uniform in ``[min_length, max_length]``, with ``FEATURES`` standard
normal features ``x``; a query vector ``q`` (also standard normal) and
fixed random directions ``a``, ``b`` give the latent relevance

```
z = sin(2 a.x) + 0.5 (b.x)^2 + 0.7 tanh(2 q.x) + 0.5 noise,  noise ~ N(0, 1)
```

(``a.x``, ``b.x``, ``q.x`` scaled by ``1 / sqrt(FEATURES)``), nonlinear in
``x`` and query-dependent. Grades are the bins of ``z`` at the global
quantiles 0.5, 0.75, 0.9, 0.97: about half of the documents are
irrelevant and 3 % have grade 4. The network sees ``x`` and ``q``
concatenated. ``--svmlight PATH`` reads LETOR / MSLR-style rows with a
``qid`` instead (``sklearn.datasets.load_svmlight_file(..., query_id=True)``),
split by query.

Losses: MSE on the grades (pointwise), listwise softmax cross-entropy
(target distribution proportional to ``2^g - 1``), ListMLE and pairwise
logistic (keras-rs's ``ListMLELoss`` and ``PairwiseLogisticLoss``),
ApproxNDCG (``NDCGLoss(ranker=SigmoidRanker(T))``), ``NDCGLoss()`` (the
default learned ranker) and ``NDCGLoss(k=10)`` (the metric's cut-off).
MRR counts the documents of grade >= 3 as relevant.

```
python benchmarks/ltr.py --records benchmarks/results/ltr.jsonl \
    --output benchmarks/results/ltr.md      # 10 seeds, the docs' table
python benchmarks/ltr.py --seeds 2 --epochs 3 --queries 60   # smoke run
```
"""

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes

import keras  # noqa: E402
import keras_rs  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from sklearn.metrics import ndcg_score  # noqa: E402

import keras_sodeep  # noqa: E402
from keras_sodeep.ranking import SigmoidRanker  # noqa: E402

FEATURES = 16
QUERY_FEATURES = 4
GRADE_QUANTILES = (0.5, 0.75, 0.9, 0.97)
HIDDEN = 64
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
EPOCHS = 30
TRAIN_QUERIES = 300
TEST_QUERIES = 200
MIN_LENGTH, MAX_LENGTH = 5, 200
SEEDS = 10
APPROX_NDCG_TEMPERATURE = 0.1
MRR_GRADE = 3
"""MRR counts documents of grade >= 3 as relevant (about 10 % of them;
with grade >= 1, half the documents, every loss reaches MRR ~1)."""
BASELINE = "softmax CE"


# -- data --------------------------------------------------------------------


def _task():
    """The fixed directions ``a``, ``b`` and the query projection."""
    rng = np.random.default_rng(12345)  # the same task for every seed
    a = rng.standard_normal(FEATURES)
    b = rng.standard_normal(FEATURES)
    return a, b, rng.standard_normal((QUERY_FEATURES, FEATURES))


def latent_relevance(docs, queries, rng):
    """``z`` of documents ``(m, FEATURES)`` for queries ``(m,
    QUERY_FEATURES)`` (one per document), with fresh noise from ``rng``."""
    a, b, project = _task()
    scale = 1.0 / np.sqrt(FEATURES)
    q = queries @ project
    return (
        np.sin(2 * scale * docs @ a)
        + 0.5 * (scale * docs @ b) ** 2
        + 0.7 * np.tanh(2 * scale * np.sum(docs * q, axis=-1))
        + 0.5 * rng.standard_normal(len(docs))
    )


def grade_thresholds():
    """The quantiles `GRADE_QUANTILES` of ``z`` over 200,000 documents."""
    rng = np.random.default_rng(54321)
    docs = rng.standard_normal((200_000, FEATURES))
    queries = rng.standard_normal((200_000, QUERY_FEATURES))
    return np.quantile(latent_relevance(docs, queries, rng), GRADE_QUANTILES)


def make_queries(
    num_queries, seed, min_length=MIN_LENGTH, max_length=MAX_LENGTH
):
    """Padded queries of the generator (see the module docstring).

    Returns:
        ``(x, grades)``: ``x`` float32 ``(Q, max_length, FEATURES +
        QUERY_FEATURES)`` (zeros at the padding), ``grades`` float32
        ``(Q, max_length)`` in 0-4, -1 at the padding.
    """
    rng = np.random.default_rng(seed)
    thresholds = grade_thresholds()
    x = np.zeros((num_queries, max_length, FEATURES + QUERY_FEATURES))
    grades = np.full((num_queries, max_length), -1.0)
    for i in range(num_queries):
        n = rng.integers(min_length, max_length + 1)
        docs = rng.standard_normal((n, FEATURES))
        query = np.repeat(rng.standard_normal((1, QUERY_FEATURES)), n, 0)
        z = latent_relevance(docs, query, rng)
        grades[i, :n] = np.searchsorted(thresholds, z)
        x[i, :n, :FEATURES] = docs
        x[i, :n, FEATURES:] = query
    return x.astype("float32"), grades.astype("float32")


def svmlight_queries(path, seed, test_fraction=0.4):
    """Train and test queries of an SVMlight file with ``qid``, padded."""
    from sklearn.datasets import load_svmlight_file

    features, labels, qid = load_svmlight_file(path, query_id=True)
    x, grades, _ = keras_sodeep.query_lists.ranking_lists(features, labels, qid)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return (x[train], grades[train]), (x[test], grades[test])


# -- losses ------------------------------------------------------------------


def softmax_cross_entropy(y_true, y_pred):
    """Listwise softmax cross-entropy; targets proportional to 2^g - 1."""
    valid = y_true >= 0
    gains = ops.where(valid, ops.power(2.0, y_true) - 1.0, 0.0)
    total = ops.sum(gains, axis=-1, keepdims=True)
    target = gains / ops.maximum(total, 1e-9)
    logits = ops.where(valid, y_pred, -1e9)
    log_p = ops.log_softmax(logits, axis=-1)
    loss = -ops.sum(ops.where(valid, target * log_p, 0.0), axis=-1)
    return ops.where(ops.squeeze(total, -1) > 0, loss, 0.0)


def grade_mse(y_true, y_pred):
    """Pointwise MSE on the grades, over the documents (padding left out)."""
    valid = ops.cast(y_true >= 0, y_pred.dtype)
    error = ops.square(y_pred - ops.maximum(y_true, 0.0)) * valid
    return ops.sum(error, axis=-1) / ops.maximum(ops.sum(valid, -1), 1.0)


def losses():
    """Name -> a fresh loss, in table order."""
    return {
        "MSE on grades": lambda: grade_mse,
        BASELINE: lambda: softmax_cross_entropy,
        "ListMLE (keras-rs)": lambda: keras_rs.losses.ListMLELoss(),
        "pairwise logistic (keras-rs)": lambda: (
            keras_rs.losses.PairwiseLogisticLoss()
        ),
        f"ApproxNDCG (sigmoid {APPROX_NDCG_TEMPERATURE:g})": lambda: (
            keras_sodeep.NDCGLoss(ranker=SigmoidRanker(APPROX_NDCG_TEMPERATURE))
        ),
        "NDCGLoss()": lambda: keras_sodeep.NDCGLoss(),
        "NDCGLoss(k=10)": lambda: keras_sodeep.NDCGLoss(k=10),
    }


RANKER_CANDIDATES = (
    "histogram",
    "histogram-small",
    "histogram-smooth:0.15",
    "histogram-small-smooth:0.6",
    "sigmoid:0.3:relative",
)


def other_losses():
    """More losses for ``--losses``: `NDCGLoss` and
    `MeanReciprocalRankLoss` with other rankers than their defaults, and
    `MeanReciprocalRankLoss()`, which trains on the documents of grade >=
    `MRR_GRADE` as relevant (those its metric counts)."""
    table = {"MeanReciprocalRankLoss()": keras_sodeep.MeanReciprocalRankLoss}
    for spec in RANKER_CANDIDATES:
        table[f"NDCGLoss(ranker={spec!r})"] = lambda spec=spec: (
            keras_sodeep.NDCGLoss(ranker=spec)
        )
        table[f"MeanReciprocalRankLoss(ranker={spec!r})"] = lambda spec=spec: (
            keras_sodeep.MeanReciprocalRankLoss(ranker=spec)
        )
    return table


def all_losses():
    return {**losses(), **other_losses()}


# -- training and metrics ----------------------------------------------------


def scoring_model(num_features, length, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((length, num_features)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(1),
            keras.layers.Reshape((length,)),
        ]
    )


def ndcg_at(grades, scores, k=10):
    """Mean NDCG@k over queries with a relevant document (sklearn)."""
    values = []
    for g, s in zip(grades, scores):
        keep = g >= 0
        gains = 2.0 ** g[keep] - 1.0
        if gains.sum() > 0 and keep.sum() > 1:
            values.append(ndcg_score(gains[None], s[keep][None], k=k))
    return float(np.mean(values))


def mean_reciprocal_rank(grades, scores, threshold=MRR_GRADE):
    """Mean over queries with a document of grade >= ``threshold`` of
    1 / the best rank of such a document (ties: the expected rank under
    random tie-breaking)."""
    values = []
    for g, s in zip(grades, scores):
        keep = g >= 0
        relevant = g[keep] >= threshold
        s = s[keep]
        if relevant.any():
            top = s[relevant].max()
            above = np.sum(s > top)
            tied = np.sum(s == top)
            tied_relevant = np.sum((s == top) & relevant)
            # Expected 1/rank of the first relevant among the tied block.
            ranks = np.arange(1, tied + 1)
            weights = _first_relevant_probability(tied, tied_relevant)
            values.append(float(np.sum(weights / (above + ranks))))
    return float(np.mean(values))


def _first_relevant_probability(tied, relevant):
    """P(the first relevant item of a random order of ``tied`` items, of
    which ``relevant`` are relevant, is at position j), j = 1..tied."""
    probs = []
    none_yet = 1.0
    for j in range(tied):
        remaining = tied - j
        p = relevant / remaining if remaining else 0.0
        probs.append(none_yet * p)
        none_yet *= 1.0 - p
    return np.array(probs)


def run_one(name, make_loss, train, test, seed, epochs):
    x, y = train
    model = scoring_model(x.shape[-1], x.shape[1], seed)
    loss = make_loss()
    model.compile(
        keras.optimizers.Adam(LEARNING_RATE), loss=loss, jit_compile=False
    )
    # The package's losses take padding as per-item sample weights (0 at
    # the padding); keras-rs's and the functions above mask labels < 0.
    weights = None
    if isinstance(loss, keras_sodeep.losses.ListwiseLoss):
        weights = (y >= 0).astype("float32")
    if isinstance(loss, keras_sodeep.MeanReciprocalRankLoss):
        # Its relevant documents are those the MRR counts.
        y = np.where(y >= 0, (y >= MRR_GRADE).astype("float32"), y)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model.fit(
        x,
        y,
        sample_weight=weights,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    scores = np.asarray(model.predict(test[0], batch_size=256, verbose=0))
    return {
        "loss": name,
        "seed": seed,
        "ndcg@10": ndcg_at(test[1], scores),
        "mrr": mean_reciprocal_rank(test[1], scores),
        "seconds": seconds,
    }


def verdict(values, baseline):
    diff = np.asarray(values) - np.asarray(baseline)
    mean = float(np.mean(diff))
    if len(diff) < 2:
        return f"one seed (difference {mean:+.4f})"
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
    word = "beats" if mean > 2 * se else "loses" if mean < -2 * se else "ties"
    return f"{word} ({mean:+.4f} ± {se:.4f})"


def table(records, command):
    names = list(dict.fromkeys(r["loss"] for r in records))
    by = {(r["loss"], r["seed"]): r for r in records}
    seeds = sorted({r["seed"] for r in records})
    lines = [
        "| loss | NDCG@10 | vs softmax CE (paired) | MRR | vs softmax CE "
        "(paired) | s / fit |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        row = [name]
        for metric in ("ndcg@10", "mrr"):
            values = [by[(name, s)][metric] for s in seeds]
            base = [by[(BASELINE, s)][metric] for s in seeds]
            row.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}")
            row.append("-" if name == BASELINE else verdict(values, base))
        row.append(f"{np.mean([by[(name, s)]['seconds'] for s in seeds]):.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"Seeds {seeds[0]}-{seeds[-1]} (mean ± std over seeds; paired "
        "difference ± its standard error). Command: `" + command + "`",
    ]
    return "\n".join(lines) + "\n"


def _read_records(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _append_record(path, record):
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/ltr.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--queries", type=int, default=TRAIN_QUERIES)
    parser.add_argument("--svmlight", default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--losses",
        default=None,
        help="semicolon-separated losses' names (default: the table's); "
        "`NDCGLoss(ranker='histogram-small')` and the other names of "
        "`other_losses` also run",
    )
    parser.add_argument(
        "--records",
        default=None,
        help="a JSON-lines file: finished (loss, seed) runs are read from "
        "it and skipped, new ones appended (resumes an interrupted run)",
    )
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "queries"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} should be a positive int")
    command = "python benchmarks/ltr.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    chosen = list(losses())
    if args.losses:
        chosen = [name.strip() for name in args.losses.split(";")]
        unknown = [name for name in chosen if name not in all_losses()]
        if unknown or BASELINE not in chosen:
            parser.error(
                f"--losses should name {BASELINE!r} and others among "
                f"{list(all_losses())}. Received: {args.losses!r}"
            )
    records = _read_records(args.records)
    done = {(r["loss"], r["seed"]) for r in records}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        names = [n for n in chosen if (n, seed) not in done]
        if not names:
            continue
        if args.svmlight:
            train, test = svmlight_queries(args.svmlight, seed)
        else:
            train = make_queries(args.queries, seed)
            test = make_queries(
                max(TEST_QUERIES * args.queries // TRAIN_QUERIES, 20),
                10_000 + seed,
            )
        for name in names:
            record = run_one(
                name, all_losses()[name], train, test, seed, args.epochs
            )
            records.append(record)
            _append_record(args.records, record)
            print(
                f"seed {seed} {name}: NDCG@10 {record['ndcg@10']:.4f} "
                f"MRR {record['mrr']:.4f} ({record['seconds']:.1f} s)",
                flush=True,
            )
    wanted = range(args.first_seed, args.first_seed + args.seeds)
    records = [
        r for r in records if r["seed"] in wanted and r["loss"] in chosen
    ]
    text = table(records, command.strip())
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
