"""What a ranking metric adds to a ``fit`` epoch.

Small models, trained with ``fit`` with no metric and with each metric of
``keras_sodeep.metrics`` in ``compile(metrics=...)``; the table gives the
median epoch time over a few repeats and its ratio to the epoch without a
metric (Keras's own ``"mae"`` is a reference row). Keras computes every
metric's ``result()`` after every step (``train_step`` returns the
metrics' results for the per-batch logs), so a metric over the batch
axis, exact over every sample seen, sorts them all at every step: its
cost grows with the samples seen in the epoch, and this is the cost a
user feels.

- ``regressor``: 4,096 samples of 16 features, ``Dense(32, relu)`` then
  ``Dense(1)``, MSE, batches of 32 (128 steps per epoch); the metrics rank
  over the batch axis (``axis=0``): every sample seen in the epoch. The
  relevance metrics see 0/1 targets (a classifier, same model).
- ``listwise``: 1,024 queries of 20 items with 8 features and relevance
  grades 0-4, a ``Dense(16, relu)`` then ``Dense(1)`` scorer per item, MSE
  on the grades, batches of 32 queries (32 steps per epoch); the metrics
  rank each list (``axis=-1``).

Every model is built and traced first (one epoch); then, ``--repeats``
times, each variant trains ``--epochs`` epochs in turn (interleaved, so
that a change of the machine's load touches every variant alike), and
its epoch time is the median over the repeats of the mean epoch time.

It measures the ``keras_sodeep`` that Python imports (printed under the
table): from a checkout, put the checkout first on the path.

```
PYTHONPATH=. python benchmarks/metric_overhead.py              # the table
PYTHONPATH=. python benchmarks/metric_overhead.py --repeats 1 --epochs 1
PYTHONPATH=. KERAS_BACKEND=jax python benchmarks/metric_overhead.py
```
"""

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _metric_variants():
    """``[(setup, label, make)]``: ``make()`` returns the metric or None."""
    from keras_sodeep import metrics

    rows = [
        ("regressor", "no metric", lambda: None),
        ("regressor", 'keras "mae"', lambda: "mae"),
        ("regressor", "SpearmanCorrelation()", metrics.SpearmanCorrelation),
        ("classifier", "no metric", lambda: None),
        ("classifier", "MeanAveragePrecision()", metrics.MeanAveragePrecision),
        (
            "classifier",
            "RecallAtK(10, axis=0)",
            lambda: metrics.RecallAtK(10, axis=0),
        ),
        (
            "classifier",
            "HitRateAtK(10, axis=0)",
            lambda: metrics.HitRateAtK(10, axis=0),
        ),
        ("listwise", "no metric", lambda: None),
        ("listwise", 'keras "mae"', lambda: "mae"),
        (
            "listwise",
            "SpearmanCorrelation(axis=-1)",
            lambda: metrics.SpearmanCorrelation(axis=-1),
        ),
        (
            "listwise",
            "MeanAveragePrecision(axis=-1)",
            lambda: metrics.MeanAveragePrecision(axis=-1),
        ),
        ("listwise", "RecallAtK(5)", lambda: metrics.RecallAtK(5)),
        ("listwise", "HitRateAtK(5)", lambda: metrics.HitRateAtK(5)),
    ]
    # The learning-to-rank metrics, where this version has them.
    for label, name, kwargs in [
        ("NDCG()", "NDCG", {}),
        ("NDCG(k=10)", "NDCG", {"k": 10}),
        ("DCG()", "DCG", {}),
        ("MeanReciprocalRank()", "MeanReciprocalRank", {}),
        ("PrecisionAtK(5)", "PrecisionAtK", {"k": 5}),
    ]:
        if hasattr(metrics, name):
            cls = getattr(metrics, name)
            rows.append(("listwise", label, lambda c=cls, kw=kwargs: c(**kw)))
    return rows


def _data(setup):
    import numpy as np

    rng = np.random.default_rng(0)
    if setup in ("regressor", "classifier"):
        x = rng.normal(size=(4096, 16)).astype("float32")
        signal = np.tanh(x @ rng.normal(size=16)) + 0.3 * rng.normal(size=4096)
        y = signal if setup == "regressor" else (signal > 0.5)
        return x, y.astype("float32")[:, None], 32
    x = rng.normal(size=(1024, 20, 8)).astype("float32")
    signal = np.tanh(x @ rng.normal(size=8)) + 0.3 * rng.normal(size=(1024, 20))
    grades = np.digitize(signal, [0.0, 0.5, 0.8, 1.0]).astype("float32")
    return x, grades, 32


def _model(setup, metric):
    import keras

    keras.utils.set_random_seed(0)
    if setup == "listwise":
        model = keras.Sequential(
            [
                keras.Input((20, 8)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1),
                keras.layers.Reshape((20,)),
            ]
        )
    else:
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
    model.compile(
        optimizer="adam",
        loss="mse",
        metrics=[] if metric is None else [metric],
    )
    return model


def measure(epochs, repeats):
    """``[(setup, label, seconds per epoch)]``."""
    variants = []
    for setup, label, make in _metric_variants():
        x, y, batch = _data(setup)
        model = _model(setup, make())
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # traces
        variants.append((setup, label, model, x, y, batch, []))
    for _ in range(repeats):
        for _, _, model, x, y, batch, times in variants:
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
            times.append((time.perf_counter() - start) / epochs)
    return [
        (setup, label, statistics.median(times))
        for setup, label, _, _, _, _, times in variants
    ]


def table(rows):
    base = {s: t for s, label, t in rows if label == "no metric"}
    lines = [
        "| model | metric | epoch (s) | vs no metric |",
        "|---|---|---|---|",
    ]
    for setup, label, seconds in rows:
        lines.append(
            f"| {setup} | {label} | {seconds:.3f} | "
            f"{seconds / base[setup]:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--output",
        default=None,
        help="also write the table to this Markdown file",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import keras_sodeep

    start = time.time()
    load = os.getloadavg()
    rows = measure(args.epochs, args.repeats)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(
        [
            table(rows),
            "",
            f"Backend {keras.backend.backend()}, median over {args.repeats} "
            f"repeats of {args.epochs} epochs; {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average "
            f"{load[0]:.2f} / {os.getloadavg()[0]:.2f} (start / end), "
            f"{(time.time() - start) / 60:.1f} min; keras_sodeep from "
            f"{os.path.dirname(os.path.dirname(keras_sodeep.__file__))}.",
            "",
            "Command: `"
            + f"python benchmarks/metric_overhead.py {command}".strip()
            + "`",
        ]
    )
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
