"""The paper's three downstream tasks, small and offline.

Each SoDeep loss is trained against its usual baseline and with the
analytic rankers in its place, on data that ships with scikit-learn:

- Spearman regression: ``load_diabetes``, a small MLP; ``SpearmanLoss``
  against MSE; metric: Spearman correlation on the held-out split.
- Multi-label classification: 2 x 2 mosaics of ``load_digits`` images
  (a cell is empty with probability 1/2), labelled with the digits present;
  ``MeanAveragePrecisionLoss`` against binary cross-entropy; metric:
  macro mAP (``sklearn.metrics.average_precision_score``) on held-out
  mosaics.
- Retrieval: open-set split of ``load_digits``, embeddings trained on the
  digits 0-4 and evaluated on the digits 5-9 (each image a query against
  the others); ``RecallAtKLoss`` and ``RankTripletLoss`` against a
  batch-hard triplet loss on cosine similarity; metric: Recall@1
  (`keras_sodeep.retrieval.recall_at_k`) of 8-dimensional embeddings.
  The SupRank / ROADMAP losses (``SupAPLoss``, ``ROADMAPLoss``,
  ``SupRecallAtKLoss``, their own rank, no ranker) run there too, each
  alone and inside a ``CrossBatchMemory`` of 256 embeddings (warm-up 30
  steps, about two epochs).
  Also the losses of the neighbouring papers: ``RankedListLoss``,
  ``RecallAtKSurrogateLoss`` (RS@k) with its sigmoid ranks, with
  similarity mixup, with ``ranker=None`` (the package default) and with the
  learned sorter, and one large-batch run (RS@k, batches of 256 in chunks
  of 64 with ``ChunkedEmbeddingModel``).

The SoDeep rows use a pretrained length-generic sorter
(``keras_sodeep.pretrained("histogram")`` by default, shipped with the
package: nothing is downloaded) inside a ``SorterRanker``; the analytic rows
use ``SigmoidRanker`` (the paper's handcrafted sorter) and
``NeuralSortRanker``. Every configuration runs with 5 seeds (weights, data
split and batch order); the table gives the mean and standard deviation over
seeds, and a verdict per task: the SoDeep loss with the learned sorter
against the task's usual loss, "beats" or "loses" when the means differ by
more than the sum of the two standard deviations, else "tie within the seed
spread".

```
python benchmarks/downstream.py                 # the README table
python benchmarks/downstream.py --quick         # a smoke run (1 seed)
python benchmarks/downstream.py --sorter PATH   # another preset or folder
python benchmarks/downstream.py --tasks retrieval --output PATH  # one task
```
"""

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from keras_sodeep.losses import (  # noqa: E402
    CrossBatchMemory,
    MeanAveragePrecisionLoss,
    RankedListLoss,
    RankingLoss,
    RankTripletLoss,
    RecallAtKLoss,
    RecallAtKSurrogateLoss,
    ROADMAPLoss,
    SpearmanLoss,
    SupAPLoss,
    SupRecallAtKLoss,
)
from keras_sodeep.presets import pretrained  # noqa: E402
from keras_sodeep.ranking import (  # noqa: E402
    NeuralSortRanker,
    SigmoidRanker,
    SorterRanker,
)
from keras_sodeep.ranking import get as get_ranker  # noqa: E402
from keras_sodeep.retrieval import recall_at_k  # noqa: E402
from keras_sodeep.training import (  # noqa: E402
    ChunkedEmbeddingModel,
    evaluate_ranker,
)

BATCH_SIZE = 64
JIT_COMPILE = True
# Small enough that raw pixels do not already retrieve the unseen digits
# almost perfectly: with 16 dimensions an untrained network scores
# Recall@1 ~0.93 and training on the seen digits does not improve on it.
EMBEDDING_DIM = 8


# -- the learned sorter -------------------------------------------------------

SODEEP = "SoDeep ({} preset)"


def load_sorter(name):
    """The learned sorter, its row label and its L1 on 1,000 lists of 64.

    ``name``: a preset name or folder, or a sorter specification of
    ``keras_sodeep.ranking.get`` such as ``"histogram-smooth:0.6"``.
    """
    ranker = get_ranker(name)
    sorter = getattr(ranker, "sorter", None) or pretrained(name)
    figures = evaluate_ranker(sorter, seq_len=64, num_lists=1000, lengths=())
    label = os.path.basename(name)
    label = f"SoDeep ({label})" if ":" in label else SODEEP.format(label)
    return sorter, label, figures["l1"]


def rankers(sorter, label):
    """The rankers compared inside each SoDeep loss, by row label."""
    return {
        label: lambda: SorterRanker(sorter),
        "SigmoidRanker(0.1)": lambda: SigmoidRanker(0.1),
        "NeuralSortRanker(1.0)": lambda: NeuralSortRanker(1.0),
    }


# -- task 1: Spearman regression ------------------------------------------


def diabetes_split(seed):
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    split = int(0.7 * len(y))
    train, test = order[:split], order[split:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = ((x - mean) / std).astype("float32")
    y = ((y - y[train].mean()) / y[train].std()).astype("float32")
    return x[train], y[train], x[test], y[test]


def fit_mlp(x, y, hidden, outputs, learning_rate, loss, seed, epochs):
    """A one-hidden-layer MLP, trained with `loss` unless it is None."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(outputs),
        ]
    )
    if loss is not None:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=loss,
            jit_compile=JIT_COMPILE,
        )
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    return model


def regression(loss, seed, epochs):
    x, y, x_test, y_test = diabetes_split(seed)
    model = fit_mlp(x, y, 32, 1, 3e-3, loss, seed, epochs)
    pred = model.predict(x_test, verbose=0)[:, 0]
    return spearmanr(pred, y_test).statistic


# -- task 2: multi-label mosaics, mAP ---------------------------------------


def digit_mosaics(num, seed, grid=2, empty=0.5):
    """Mosaics of ``grid x grid`` digits; labels: the digits present."""
    digits = load_digits()
    images = digits.images.astype("float32") / 16.0
    rng = np.random.default_rng(seed)
    side = 8 * grid
    x = np.zeros((num, side, side), "float32")
    y = np.zeros((num, 10), "float32")
    for i in range(num):
        for row in range(grid):
            for col in range(grid):
                if rng.random() < empty:
                    continue
                j = rng.integers(len(images))
                x[i, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8] = images[j]
                y[i, digits.target[j]] = 1.0
    return x.reshape(num, -1), y


def multilabel(loss, seed, epochs, num_train=2000, num_test=1000):
    x, y = digit_mosaics(num_train, seed)
    x_test, y_test = digit_mosaics(num_test, 1000 + seed)
    model = fit_mlp(x, y, 64, 10, 3e-3, loss, seed, epochs)
    scores = model.predict(x_test, verbose=0)
    return average_precision_score(y_test, scores, average="macro")


# -- task 3: open-set retrieval, Recall@1 -------------------------------------


@keras.saving.register_keras_serializable(package="keras_sodeep_benchmarks")
class BatchHardTripletLoss(keras.losses.Loss):
    """Batch-hard triplet loss on cosine similarity (Hermans et al. 2017).

    For each anchor, the least similar positive and the most similar
    negative of the batch: ``max(0, margin - s(a, p) + s(a, n))``.
    """

    def __init__(self, margin=0.2, name="batch_hard_triplet", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        labels = ops.reshape(y_true, (-1,))
        unit = y_pred / ops.maximum(
            ops.sqrt(ops.sum(ops.square(y_pred), -1, keepdims=True)), 1e-12
        )
        sim = ops.matmul(unit, ops.transpose(unit))
        same = ops.equal(labels[:, None], labels[None, :])
        not_self = ops.logical_not(ops.cast(ops.eye(ops.shape(sim)[0]), bool))
        positive = ops.logical_and(same, not_self)
        hardest_pos = ops.min(ops.where(positive, sim, 2.0), -1)
        hardest_neg = ops.max(ops.where(same, -2.0, sim), -1)
        valid = ops.logical_and(
            ops.any(positive, -1), ops.any(ops.logical_not(same), -1)
        )
        hinge = ops.relu(self.margin - hardest_pos + hardest_neg)
        return ops.where(valid, hinge, 0.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def digits_open_set(seed):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    train = y < 5
    order = np.random.default_rng(seed).permutation(int(train.sum()))
    return x[train][order], y[train][order], x[~train], y[~train]


def retrieval(loss, seed, epochs):
    x, y, x_test, y_test = digits_open_set(seed)
    model = fit_mlp(x, y, 64, EMBEDDING_DIM, 1e-3, loss, seed, epochs)
    embeddings = model.predict(x_test, verbose=0)
    return recall_at_k(embeddings, query_labels=y_test, k=1)[1]


LARGE_BATCH, CHUNK = 256, 64


def retrieval_large(loss, seed, epochs):
    """`retrieval` with batches of 256 embedded in chunks of 64."""
    x, y, x_test, y_test = digits_open_set(seed)
    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(EMBEDDING_DIM),
        ]
    )
    model = ChunkedEmbeddingModel(net, chunk_size=CHUNK)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(x, y, batch_size=LARGE_BATCH, epochs=epochs, verbose=0)
    embeddings = net.predict(x_test, verbose=0)
    return recall_at_k(embeddings, query_labels=y_test, k=1)[1]


def default_ranker_label():
    ranker = get_ranker(RankingLoss.default_ranker())
    temperature = getattr(ranker, "temperature", None)
    name = type(ranker).__name__
    return f"ranker=None: {name}" + (
        f"({temperature:g})" if temperature is not None else ""
    )


# -- the runs -----------------------------------------------------------------

SPEARMAN_DEFAULT = f"SoDeep default ({SpearmanLoss.default_ranker()!r})"
"""The row label of `SpearmanLoss()`, with its own default ranker."""
MAP_DEFAULT = f"SoDeep default ({MeanAveragePrecisionLoss.default_ranker()!r})"
"""The row label of `MeanAveragePrecisionLoss()`."""
LOSS_DEFAULTS = {"SpearmanLoss": SPEARMAN_DEFAULT, "MAPLoss": MAP_DEFAULT}
"""The row label of each loss whose default is not the learned sorter's."""


TASKS = [
    ("Spearman regression (diabetes)", "Spearman ρ", regression),
    ("Multi-label mosaics (digits)", "mAP", multilabel),
    ("Open-set retrieval (digits 5-9)", "Recall@1", retrieval),
]


# SupRank / ROADMAP rows: their own rank, so no ranker; each also with a
# cross-batch memory (about 30 % of the ~900 training images).
SUPRANK_LOSSES = {
    "SupAPLoss": SupAPLoss,
    "ROADMAPLoss": ROADMAPLoss,
    "SupRecallAtKLoss": SupRecallAtKLoss,
}
MEMORY_SIZE = 256
MEMORY_WARMUP = 30


def configurations(sorter, sorter_label):
    """(task, metric, loss label, ranker label, run(seed)) for every row."""
    rows = []
    ranks = rankers(sorter, sorter_label)

    def add(task, metric, label, ranker, make_loss, run):
        rows.append((task, metric, label, ranker, make_loss, run))

    for task, metric, run in TASKS:
        add(task, metric, "none (untrained network)", "-", lambda: None, run)
    add(
        "Spearman regression (diabetes)",
        "Spearman ρ",
        "SpearmanLoss",
        SPEARMAN_DEFAULT,
        lambda: SpearmanLoss(),
        regression,
    )
    for name, make in [("-", None)] + list(ranks.items()):
        add(
            "Spearman regression (diabetes)",
            "Spearman ρ",
            "MSE" if make is None else "SpearmanLoss",
            name,
            (lambda: "mse")
            if make is None
            else (lambda make=make: SpearmanLoss(ranker=make())),
            regression,
        )
    add(
        "Multi-label mosaics (digits)",
        "mAP",
        "MAPLoss",
        MAP_DEFAULT,
        lambda: MeanAveragePrecisionLoss(),
        multilabel,
    )
    for name, make in [("-", None)] + list(ranks.items()):
        add(
            "Multi-label mosaics (digits)",
            "mAP",
            "binary cross-entropy" if make is None else "MAPLoss",
            name,
            (lambda: keras.losses.BinaryCrossentropy(from_logits=True))
            if make is None
            else (lambda make=make: MeanAveragePrecisionLoss(ranker=make())),
            multilabel,
        )
    retrieval_rows = [("batch-hard triplet", "-", BatchHardTripletLoss)]
    for name, make in ranks.items():
        retrieval_rows.append(
            (
                "RecallAtKLoss",
                name,
                lambda make=make: RecallAtKLoss(ranker=make()),
            )
        )
    retrieval_rows.append(
        (
            "RankTripletLoss",
            sorter_label,
            lambda: RankTripletLoss(ranker=ranks[sorter_label]()),
        )
    )
    retrieval_rows += [
        ("RankedListLoss", "-", lambda: RankedListLoss()),
        (
            "RecallAtKSurrogateLoss",
            "SigmoidRanker(0.01)",
            lambda: RecallAtKSurrogateLoss(),
        ),
        (
            "RecallAtKSurrogateLoss + SiMix",
            "SigmoidRanker(0.01)",
            lambda: RecallAtKSurrogateLoss(simix=True, seed=0),
        ),
        (
            "RecallAtKSurrogateLoss",
            default_ranker_label(),
            lambda: RecallAtKSurrogateLoss(ranker=None),
        ),
        (
            "RecallAtKSurrogateLoss",
            sorter_label,
            lambda: RecallAtKSurrogateLoss(ranker=ranks[sorter_label]()),
        ),
    ]
    for label, make in SUPRANK_LOSSES.items():
        retrieval_rows.append((label, "-", make))
        retrieval_rows.append(
            (
                f"{label} + memory ({MEMORY_SIZE})",
                "-",
                lambda make=make: CrossBatchMemory(
                    make(), size=MEMORY_SIZE, warmup_steps=MEMORY_WARMUP
                ),
            )
        )
    for label, name, make_loss in retrieval_rows:
        add(
            "Open-set retrieval (digits 5-9)",
            "Recall@1",
            label,
            name,
            make_loss,
            retrieval,
        )
    add(
        "Open-set retrieval (digits 5-9)",
        "Recall@1",
        f"RecallAtKSurrogateLoss, batch {LARGE_BATCH} in chunks of {CHUNK}",
        "SigmoidRanker(0.01)",
        lambda: RecallAtKSurrogateLoss(),
        retrieval_large,
    )
    return rows


# retrieval_large: about as many steps as `retrieval` (4 batches an epoch).
EPOCHS = {regression: 60, multilabel: 15, retrieval: 20, retrieval_large: 60}
TASK_KEYS = {
    "regression": (regression,),
    "multilabel": (multilabel,),
    "retrieval": (retrieval, retrieval_large),
}
BASELINES = {
    "Spearman regression (diabetes)": ("MSE", "SpearmanLoss"),
    "Multi-label mosaics (digits)": ("binary cross-entropy", "MAPLoss"),
    "Open-set retrieval (digits 5-9)": ("batch-hard triplet", "RecallAtKLoss"),
}


def verdict(sodeep, baseline):
    """The paired difference over seeds and "beats", "loses" or "ties".

    Both rows ran on the same seeds (the same split, initial weights and
    batch order), so the per-seed differences are compared: "beats" or
    "loses" when their mean is more than twice its standard error away
    from 0, else "ties".
    """
    diff = np.asarray(sodeep) - np.asarray(baseline)
    mean = float(np.mean(diff))
    if len(diff) < 2:
        return f"one seed, no verdict (difference {mean:+.4f}) against"
    se = 0.0
    if len(diff) > 1:
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
    word = "beats" if mean > 2 * se else "loses" if mean < -2 * se else "ties"
    return f"{word} (paired difference {mean:+.4f} ± {se:.4f} s.e.)"


def verdicts(results, sorter_label):
    """One Markdown line per task: the SoDeep loss against its baseline."""
    found = {(r[0], r[2], r[3]): r for r in results}
    lines = []
    for task, (base_loss, sodeep_loss) in BASELINES.items():
        base = found.get((task, base_loss, "-"))
        label = LOSS_DEFAULTS.get(sodeep_loss, sorter_label)
        sodeep = found.get((task, sodeep_loss, label))
        if base is None or sodeep is None:
            continue
        lines.append(
            f"- {task}: {sodeep_loss} ({sodeep[3]}) {sodeep[5]:.4f} ± "
            f"{sodeep[6]:.4f} {verdict(sodeep[7], base[7])} {base_loss} "
            f"{base[5]:.4f} ± {base[6]:.4f}."
        )
    return lines


def best_rows(results):
    """Per task: the best trained row and its lead over the next best."""
    lines = []
    for task in dict.fromkeys(r[0] for r in results):
        rows = sorted(
            (r for r in results if r[0] == task and r[4] > 0),
            key=lambda r: -r[5],
        )
        if len(rows) < 2:
            continue
        (_, _, label, ranker, _, mean, std, _), second = rows[0], rows[1]
        lines.append(
            f"- {task}: best {label} ({ranker}) {mean:.4f} ± {std:.4f}, "
            f"{mean - second[5]:+.4f} over the next best, {second[2]} "
            f"({second[3]}) {second[5]:.4f} ± {second[6]:.4f}."
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the seeds are first-seed, first-seed + 1, ...",
    )
    parser.add_argument(
        "--sorter",
        default="histogram",
        help="the learned sorter: a preset name or folder, or a sorter "
        "specification such as histogram-smooth:0.6",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, few epochs: a smoke run"
    )
    parser.add_argument(
        "--tasks",
        default=",".join(TASK_KEYS),
        help="comma-separated tasks among " + ", ".join(TASK_KEYS),
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="only the rows whose loss or ranker label contains one of "
        "these comma-separated words, plus each task's baseline (e.g. "
        "'SoDeep' to re-measure the learned sorter's rows)",
    )
    parser.add_argument(
        "--output",
        help="the Markdown table (default: benchmarks/results/"
        "downstream.md, or downstream_TASKS.md with --tasks)",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        every = args.tasks == ",".join(TASK_KEYS)
        suffix = "" if every else "_" + args.tasks.replace(",", "_")
        args.output = os.path.join(
            os.path.dirname(os.path.abspath(__file__)),
            "results",
            f"downstream{suffix}.md",
        )
    seeds = 1 if args.quick else args.seeds
    scale = 0.2 if args.quick else 1.0
    start = time.time()
    sorter, sorter_label, sorter_l1 = load_sorter(args.sorter)
    print(
        f"{sorter_label}: L1 {sorter_l1:.4f} on 1,000 lists of 64",
        flush=True,
    )
    results = []
    runs = [run for key in args.tasks.split(",") for run in TASK_KEYS[key]]
    rows = [
        row for row in configurations(sorter, sorter_label) if row[5] in runs
    ]
    if args.rows:
        words = args.rows.split(",")
        baselines = {base for base, _ in BASELINES.values()}
        rows = [
            row
            for row in rows
            if row[2] in baselines
            or any(word in row[2] or word in row[3] for word in words)
        ]
    for task, metric, label, ranker, make_loss, run in rows:
        epochs = max(1, int(EPOCHS[run] * scale))
        loss = make_loss()
        if loss is None:
            epochs = 0
        values = []
        for seed in range(args.first_seed, args.first_seed + seeds):
            loss = make_loss()
            values.append(float(run(loss, seed, epochs)))
        mean, std = np.mean(values), np.std(values)
        results.append((task, metric, label, ranker, epochs, mean, std, values))
        print(
            f"{task} | {label} | {ranker}: {mean:.4f} ± {std:.4f} "
            f"({', '.join(f'{v:.4f}' for v in values)})",
            flush=True,
        )
    order = [task for task, _, _ in TASKS]
    results.sort(key=lambda row: order.index(row[0]))
    minutes = (time.time() - start) / 60
    lines = [
        "| task | metric | loss | ranker | epochs | mean ± std "
        f"({seeds} seeds from {args.first_seed}) |",
        "|---|---|---|---|---|---|",
    ]
    for task, metric, label, ranker, epochs, mean, std, _ in results:
        lines.append(
            f"| {task} | {metric} | {label} | {ranker} | {epochs} | "
            f"{mean:.4f} ± {std:.4f} |"
        )
    lines += ["", "Verdicts (the SoDeep loss with the learned sorter):", ""]
    lines += verdicts(results, sorter_label)
    lines += ["", "Best trained row per task:", ""]
    lines += best_rows(results)
    lines += [
        "",
        f"Learned sorter: `{args.sorter}` (L1 {sorter_l1:.4f} on 1,000 "
        f"lists of 64). Batch size {BATCH_SIZE}. Total {minutes:.1f} min on "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, keras {keras.__version__}, "
        f"backend {keras.backend.backend()}.",
        "",
        "Command: `python benchmarks/downstream.py"
        + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
        + "`",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
