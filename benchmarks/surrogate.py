"""Surrogate quality: what each ranker does for a rank loss.

Forward fidelity says nothing about the gradient. Here free scores, drawn
independently of their targets, are optimized with Adam on the package's own
losses, and the figure is the exact metric they reach after a fixed number
of steps:

```
theta ~ N(0, 1)                          free parameters, fixed per seed
x = scale * theta                        the scores the loss sees
theta <- Adam(lr=0.05) on loss(y, x)     `steps` steps, in a tf.function
figure = exact metric of x against y     mean +- std over seeds
```

Optimizing ``theta`` with ``x = scale * theta`` is optimizing ``x``
directly with Adam's learning rate and epsilon multiplied by ``scale``: the
optimizer moves ``x`` in proportion to its scale, so only the ranker sees
the scale. A ranker whose temperature is in score units is blunt at
``scale = 0.01`` and passes almost no gradient at ``scale = 100``.

Cases (each seed holds `LISTS` = 8 lists, along ``axis=-1``):

- ``spearman``: ``SpearmanLoss(ranker, axis=-1)`` on real-valued targets
  drawn from the ``"paper"`` mix (`keras_sodeep.synthetic`) and from each
  held-out distribution (`keras_sodeep.synthetic.HELD_OUT`); metric: the
  Spearman correlation of each list with its targets (tie-averaged ranks).
- ``map``: ``MeanAveragePrecisionLoss(ranker, axis=-1)``, ``max(1,
  round(n / 10))`` positives per list at random places; metric: the Average
  Precision of each list (as ``sklearn.metrics.average_precision_score``).
- ``ndcg``: ``NDCGLoss(ranker=ranker)``, grades 0-4 drawn with the
  probabilities `GRADE_PROBABILITIES` (every list gets a grade-3 item);
  metric: the NDCG of each list (exponential gain, whole list; as
  ``sklearn.metrics.ndcg_score`` on the gains ``2^g - 1``).
- ``recall``: ``RecallAtKLoss(ranker=ranker)`` on free embeddings ``(n,
  16)`` with ``n // 4`` classes (about 4 items each); each item is a query
  against the others by cosine similarity; metric: Recall@1, the hit rate
  of each query's nearest other item (ties count fractionally). Cosine
  similarity does not depend on the scale of the embeddings, so this case
  runs at scale 1 only.

Rankers: objects (a ``keras_sodeep.ranking.Ranker``, a sorter) or
specifications for ``keras_sodeep.ranking.get`` (``"sigmoid:0.1"``,
``"sigmoid:0.3:relative"``, ``"neuralsort:1.0"``, a preset name or folder),
or ``"default"`` for the losses' ``ranker=None``, optionally paired
with the largest list length to run them at: ``(NeuralSortRanker(1.0),
100)``. A fixed-length sorter runs only where ``n`` equals its length; a
run whose lists would need more than ``max_pairs`` pairwise entries
(``lists * n * n``) is skipped, as is a ranker above its own largest
length. "best analytic" is, per cell, the best mean over the
``SigmoidRanker`` and ``NeuralSortRanker`` entries.

```
python benchmarks/surrogate.py           # the README table (long)
python benchmarks/surrogate.py --quick   # smoke run: n in {16, 100},
                                         # paper targets, 2 seeds
```

The seeds run together, as one batch of independent lists whose losses are
summed: Adam acts element-wise, so this equals separate runs.
"""

import argparse
import json
import os
import sys
import time

from _keras_sodeep_cli import import_tensorflow_quietly

tf = import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import comma_list, machine_description, positive  # noqa: E402

from keras_sodeep import losses, ranking, synthetic  # noqa: E402
from keras_sodeep.presets import list_presets  # noqa: E402

tf.get_logger().setLevel("ERROR")

CASES = ("spearman", "map", "ndcg", "recall")
"""Benchmark cases: the loss and its exact metric."""

SIZES = (16, 100, 1000)
"""Default list lengths."""

SCALES = (0.01, 1.0, 100.0)
"""Default initial score scales."""

TARGETS = ("paper", *synthetic.HELD_OUT)
"""Target distributions of the ``spearman`` case."""

LISTS = 8
"""Lists per seed (the ``recall`` case: one set of ``n`` embeddings)."""

EMBEDDING_DIM = 16
STEPS = 100
LEARNING_RATE = 0.05
SEEDS = 3
MAX_PAIRS = 2**28
"""Largest ``lists * n * n`` a run may build (1 GiB per float32 tensor)."""

NEURALSORT_MAX_N = 100
"""Largest n of NeuralSort in the default set (slow at n = 1000)."""

QUICK = {"sizes": (16, 100), "targets": ("paper",), "seeds": 2}
"""Settings of ``--quick``."""

_METRICS = {
    "spearman": "Spearman rho",
    "map": "Average Precision",
    "ndcg": "NDCG",
    "recall": "Recall@1",
}
_LOSSES = {
    "spearman": lambda ranker: losses.SpearmanLoss(ranker=ranker, axis=-1),
    "map": lambda ranker: losses.MeanAveragePrecisionLoss(
        ranker=ranker, axis=-1
    ),
    "ndcg": lambda ranker: losses.NDCGLoss(ranker=ranker),
    "recall": lambda ranker: losses.RecallAtKLoss(ranker=ranker),
}

GRADE_PROBABILITIES = (0.5, 0.2, 0.15, 0.1, 0.05)
"""The ``ndcg`` case's grades 0-4 are drawn with these probabilities."""

STARTS = ("normal", "cauchy")
"""Initial parameters: ``theta ~ N(0, 1)`` or standard Cauchy (heavy
tails: a few scores far from the others)."""


# -- rankers -------------------------------------------------------------------


def default_rankers():
    """The rankers of a full run, in table order.

    Returns:
        A list for `run_benchmark`: ``"sigmoid:T"`` at temperatures 0.01,
        0.1, 1 and 10, its scale-free form ``"sigmoid:T:relative"`` at 0.1
        and 0.3, ``"neuralsort:T"`` at 0.1 and 1 up to `NEURALSORT_MAX_N`,
        every installed preset, and ``"default"`` (the losses'
        ``ranker=None``).
    """
    rankers = [f"sigmoid:{t}" for t in (0.01, 0.1, 1.0, 10.0)]
    rankers += [f"sigmoid:{t}:relative" for t in (0.1, 0.3)]
    rankers += [(f"neuralsort:{t}", NEURALSORT_MAX_N) for t in (0.1, 1.0)]
    rankers += sorted(list_presets())
    rankers.append("default")
    return rankers


def _resolve(spec):
    """A ranker or sorter for a specification; None for the default."""
    if spec is None or spec == "default":
        return None
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    return ranking.get(spec)


def _label(spec, ranker):
    if ranker is None:
        return "default"
    if isinstance(ranker, ranking.SigmoidRanker):
        prefix = "rel sigmoid" if ranker.relative else "sigmoid"
        return f"{prefix} {ranker.temperature:g}"
    if isinstance(ranker, ranking.NeuralSortRanker):
        return f"neuralsort {ranker.temperature:g}"
    if isinstance(spec, (str, os.PathLike)):
        return os.path.basename(os.fspath(spec).rstrip("/"))
    return type(ranker).__name__


def _entries(rankers):
    entries = []
    for item in rankers:
        spec, max_n = item if isinstance(item, tuple) else (item, None)
        ranker = _resolve(spec)
        entries.append(
            {
                "label": _label(spec, ranker),
                "ranker": ranker,
                "analytic": isinstance(
                    ranker, (ranking.SigmoidRanker, ranking.NeuralSortRanker)
                ),
                "seq_len": getattr(ranker, "seq_len", None),
                "max_n": max_n,
            }
        )
    labels = [e["label"] for e in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Two rankers share a label. Received: {labels}")
    return entries


# -- problems ------------------------------------------------------------------


def _start_of(targets):
    """The start of a ``targets`` cell label: "cauchy start" -> "cauchy"."""
    return targets[: -len(" start")] if targets.endswith(" start") else None


def _problem(case, targets, n, seed, seeds):
    """Targets and initial parameters of every seed, stacked.

    Returns ``(y, theta0)``: for ``spearman`` and ``map``, ``(seeds *
    LISTS, n)`` arrays; for ``recall``, labels ``(seeds, n)`` and embeddings
    ``(seeds, n, EMBEDDING_DIM)``.
    """
    ys, thetas = [], []
    for s in range(seed, seed + seeds):
        rng = np.random.default_rng([s, n, CASES.index(case)])
        if case == "recall":
            classes = max(2, n // 4)
            ys.append(rng.permutation(np.arange(n) % classes))
            thetas.append(rng.standard_normal((n, EMBEDDING_DIM)))
            continue
        if _start_of(targets) == "cauchy":
            thetas.append(rng.standard_cauchy((LISTS, n)))
        else:
            thetas.append(rng.standard_normal((LISTS, n)))
        if case == "ndcg":
            grades = rng.choice(5, size=(LISTS, n), p=GRADE_PROBABILITIES)
            grades[np.arange(LISTS), rng.integers(0, n, LISTS)] = 3
            ys.append(grades.astype("float32"))
        elif case == "map":
            positives = max(1, round(n / 10))
            order = np.argsort(rng.random((LISTS, n)), axis=-1)
            ys.append((order < positives).astype("float32"))
        elif targets in ("paper", "-"):
            ds = synthetic.synthetic_dataset(n, LISTS, seed=s, num_batches=1)
            ys.append(next(iter(ds))[0].numpy())
        else:
            ys.append(synthetic.held_out_lists(targets, LISTS, n, seed=s)[0])
    y = np.stack(ys) if case == "recall" else np.concatenate(ys)
    theta = np.stack(thetas) if case == "recall" else np.concatenate(thetas)
    y = y.astype("int32" if case == "recall" else "float32")
    return y, theta.astype("float32")


class _Run:
    """Adam on ``loss(y, scale * theta)`` for one ranker, case and shape.

    Traced once; each call resets the parameters and Adam's state, so the
    cells of one shape (target distributions, scales) share the trace.
    """

    def __init__(self, ranker, case, theta0, steps, learning_rate):
        self.loss = _LOSSES[case](ranker)
        self.case = case
        self.theta = tf.Variable(theta0)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build([self.theta])
        self.steps = steps
        self.seeds = (
            theta0.shape[0] if case == "recall" else theta0.shape[0] // LISTS
        )
        self._run = tf.function(self._optimize)

    def _total_loss(self, y, x):
        if self.case == "recall":
            return tf.add_n([self.loss(y[s], x[s]) for s in range(self.seeds)])
        # The mean over seeds * LISTS lists, times seeds: the sum over
        # seeds of each seed's loss.
        return self.loss(y, x) * float(self.seeds)

    def _optimize(self, y, scale):
        for _ in tf.range(self.steps):
            with tf.GradientTape() as tape:
                loss = self._total_loss(y, scale * self.theta)
            grad = tape.gradient(loss, self.theta)
            self.optimizer.apply_gradients([(grad, self.theta)])
        return scale * self.theta

    def __call__(self, y, theta0, scale):
        self.theta.assign(theta0)
        for variable in self.optimizer.variables:
            if variable is self.optimizer.iterations or tuple(
                variable.shape
            ) == tuple(self.theta.shape):
                variable.assign(tf.zeros_like(variable))
        x = self._run(tf.constant(y), tf.constant(scale, tf.float32))
        return np.asarray(x)


# -- exact metrics -------------------------------------------------------------


def spearman_per_list(y_true, scores):
    """Spearman's rho of each row of ``scores`` with the row of ``y_true``.

    The Pearson correlation of the tie-averaged ranks, as
    ``scipy.stats.spearmanr``; 0 for a constant row.

    Args:
        y_true: array ``(lists, n)``.
        scores: array ``(lists, n)``.

    Returns:
        A float64 array ``(lists,)``.
    """
    a = np.asarray(ranking.exact_rank(np.asarray(scores, "float64")))
    b = np.asarray(ranking.exact_rank(np.asarray(y_true, "float64")))
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    norm = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    safe = np.where(norm > 0, norm, 1.0)
    return np.where(norm > 0, (a * b).sum(-1) / safe, 0.0)


def average_precision_per_list(labels, scores):
    """Average Precision of each row, as ``average_precision_score``.

    ``AP = (1 / |P|) sum_{i in P} #{j in P : s_j >= s_i} / #{j : s_j >=
    s_i}``: tied items share the precision at their score, as scikit-learn
    computes it. Rows without a positive give NaN.

    Args:
        labels: array ``(lists, n)``, positives are > 0.
        scores: array ``(lists, n)``.

    Returns:
        A float64 array ``(lists,)``.
    """
    labels = np.asarray(labels) > 0
    scores = np.asarray(scores, "float64")
    out = np.full(len(scores), np.nan)
    for row, (pos, s) in enumerate(zip(labels, scores)):
        if not pos.any():
            continue
        at_least = s[None, :] >= s[pos][:, None]  # (|P|, n)
        precision = (at_least & pos[None, :]).sum(-1) / at_least.sum(-1)
        out[row] = precision.mean()
    return out


def ndcg_per_list(grades, scores):
    """NDCG of each row (exponential gain, whole list), tie-averaged.

    ``sklearn.metrics.ndcg_score`` on the gains ``2^g - 1``, row by row.
    """
    from sklearn.metrics import ndcg_score

    gains = 2.0 ** grades.astype("float64") - 1.0
    return np.array(
        [ndcg_score(g[None], s[None]) for g, s in zip(gains, scores)]
    )


def recall_at_1(embeddings, labels):
    """Recall@1 of each item as a query against the others (cosine).

    A query scores 1 when its most similar other item has its label; when
    several items tie for the top, it scores the fraction of them with its
    label (the expected hit under random tie-breaking). Queries without a
    positive are left out.

    Args:
        embeddings: array ``(n, d)``.
        labels: int array ``(n,)``.

    Returns:
        A float, the mean over queries.
    """
    e = np.asarray(embeddings, "float64")
    unit = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    top = sims == sims.max(-1, keepdims=True)
    hits = (top & same).sum(-1) / top.sum(-1)
    return float(hits[same.any(-1)].mean())


def _metric(case, y, x, seeds):
    """The exact metric of each seed, a list of floats."""
    if case == "recall":
        return [recall_at_1(x[s], y[s]) for s in range(seeds)]
    if case == "spearman":
        per_list = spearman_per_list(y, x)
    elif case == "ndcg":
        per_list = ndcg_per_list(y, x)
    else:
        per_list = average_precision_per_list(y, x)
    return [float(v) for v in per_list.reshape(seeds, LISTS).mean(-1)]


# -- the benchmark -------------------------------------------------------------


def _skip_reason(entry, case, n, seeds, max_pairs):
    if entry["seq_len"] is not None and n != entry["seq_len"]:
        return f"fixed length {entry['seq_len']}"
    if entry["max_n"] is not None and n > entry["max_n"]:
        return f"run up to n = {entry['max_n']}"
    lists = seeds * (n if case == "recall" else LISTS)
    if lists * n * n > max_pairs:
        return f"{lists} lists of {n}: {lists * n * n * 4 / 2**30:.0f} GiB"
    return None


def run_benchmark(
    rankers=None,
    cases=CASES,
    sizes=SIZES,
    scales=SCALES,
    targets=TARGETS,
    seeds=SEEDS,
    steps=STEPS,
    learning_rate=LEARNING_RATE,
    seed=0,
    max_pairs=MAX_PAIRS,
    log=None,
    starts=("normal",),
):
    """Runs the surrogate-quality benchmark (see the module docstring).

    Args:
        rankers: list of rankers, sorters or specifications, each optionally
            paired with its largest n: ``(ranker, max_n)``. Defaults to
            ``None``: `default_rankers`.
        cases: subset of `CASES`. Defaults to all.
        sizes: list lengths. Defaults to `SIZES`.
        scales: initial score scales. Defaults to `SCALES`.
        targets: target distributions of the ``spearman`` case, among
            `TARGETS`. Defaults to all.
        seeds: int, the number of seeds. Defaults to 3.
        steps: int, Adam steps. Defaults to 100.
        learning_rate: float, Adam's learning rate. Defaults to 0.05.
        seed: int, the first seed. Defaults to 0.
        max_pairs: int, the largest ``lists * n * n`` of a run. Defaults to
            `MAX_PAIRS`.
        log: callable taking a str, called with a line per cell and
            ranker. Defaults to ``None``.
        starts: initial parameters of the ``map`` and ``ndcg`` cases,
            among `STARTS`; each start but ``"normal"`` makes cells of
            their own, labelled ``"cauchy start"``. Defaults to
            ``("normal",)``.

    Returns:
        A list of dicts, one per (case, targets, n, scale, ranker):
        ``case``, ``targets``, ``n``, ``scale``, ``ranker`` (its label),
        ``analytic``, ``skipped`` (the reason, or ``None``), ``values`` (the
        metric of each seed), ``mean``, ``std`` and ``seconds``.
    """
    unknown = (
        set(cases) - set(CASES)
        or set(targets) - set(TARGETS)
        or set(starts) - set(STARTS)
    )
    if unknown:
        raise ValueError(
            f"`cases` should be among {CASES}, `targets` among {TARGETS} "
            f"and `starts` among {STARTS}. Received: {sorted(unknown)}"
        )
    entries = _entries(default_rankers() if rankers is None else rankers)
    plan = []
    for case in cases:
        if case == "spearman":
            dists = targets
        elif case == "recall":
            dists = ("-",)
        else:
            dists = tuple(
                "-" if start == "normal" else f"{start} start"
                for start in starts
            )
        case_scales = (1.0,) if case == "recall" else tuple(scales)
        cells = [(d, scale) for d in dists for scale in case_scales]
        plan += [(case, n, cells) for n in sizes]
    total = len(entries) * sum(len(cells) for _, _, cells in plan)
    records, done = [], 0
    for case, n, cells in plan:
        problems = {d: _problem(case, d, n, seed, seeds) for d in dict(cells)}
        for entry in entries:
            reason = _skip_reason(entry, case, n, seeds, max_pairs)
            run = None
            for d, scale in cells:
                done += 1
                record = {
                    "case": case,
                    "targets": d,
                    "n": n,
                    "scale": scale,
                    "ranker": entry["label"],
                    "analytic": entry["analytic"],
                    "skipped": reason,
                    "values": [],
                    "mean": None,
                    "std": None,
                    "seconds": 0.0,
                }
                if reason is None:
                    start = time.perf_counter()
                    y, theta0 = problems[d]
                    if run is None:
                        run = _Run(
                            entry["ranker"], case, theta0, steps, learning_rate
                        )
                    x = run(y, theta0, scale)
                    values = _metric(case, y, x, seeds)
                    record.update(
                        values=values,
                        mean=float(np.mean(values)),
                        std=float(np.std(values)),
                        seconds=time.perf_counter() - start,
                    )
                records.append(record)
                if log is not None:
                    log(f"[{done}/{total}] " + _progress(record))
    return records


def _progress(r):
    targets = "" if r["targets"] == "-" else f" {r['targets']}"
    where = f"{r['case']}{targets} n={r['n']} x{r['scale']:g}"
    if r["skipped"]:
        return f"{where} {r['ranker']}: skipped ({r['skipped']})"
    return (
        f"{where} {r['ranker']}: {r['mean']:.4f} ± {r['std']:.4f} "
        f"({r['seconds']:.1f} s)"
    )


# -- the report ----------------------------------------------------------------


def _cell(record):
    if record is None:
        return ""
    if record["skipped"]:
        return "skipped"
    return f"{record['mean']:.3f} ± {record['std']:.3f}"


def best_analytic(records):
    """The best analytic mean of each cell.

    Args:
        records: records of `run_benchmark`.

    Returns:
        A dict from ``(case, targets, n, scale)`` to ``(mean, ranker)``,
        over the records with ``analytic`` set that ran.
    """
    best = {}
    for r in records:
        if not r["analytic"] or r["skipped"] or np.isnan(r["mean"]):
            continue
        key = (r["case"], r["targets"], r["n"], r["scale"])
        if key not in best or r["mean"] > best[key][0]:
            best[key] = (r["mean"], r["ranker"])
    return best


def surrogate_table(records):
    """Formats the records as one Markdown table per case.

    Args:
        records: records of `run_benchmark`.

    Returns:
        A str: per case, a row per (targets, n, scale) and a column per
        ranker, ``mean ± std`` over seeds, then "best analytic".
    """
    rankers = list(dict.fromkeys(r["ranker"] for r in records))
    index = {
        (r["case"], r["targets"], r["n"], r["scale"], r["ranker"]): r
        for r in records
    }
    best = best_analytic(records)
    titles = {
        "spearman": "SpearmanLoss(axis=-1), real-valued targets",
        "map": "MeanAveragePrecisionLoss(axis=-1), ~10 % positives",
        "ndcg": "NDCGLoss(), grades 0-4",
        "recall": (
            f"RecallAtKLoss, embeddings (d = {EMBEDDING_DIM}, n / 4 "
            "classes; cosine similarity is scale-free: scale 1 only)"
        ),
    }
    lines = []
    for case in CASES:
        keys = list(
            dict.fromkeys(
                (r["targets"], r["n"], r["scale"])
                for r in records
                if r["case"] == case
            )
        )
        if not keys:
            continue
        header = ["n", "scale", *rankers, "best analytic"]
        labelled = any(d != "-" for d, _, _ in keys)
        if labelled:
            header.insert(0, "targets" if case == "spearman" else "start")
        lines += [
            f"### {_METRICS[case]} reached: {titles[case]}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for d, n, scale in keys:
            row = [str(n), f"{scale:g}"]
            if labelled:
                row.insert(0, "normal" if d == "-" else d)
            row += [_cell(index.get((case, d, n, scale, k))) for k in rankers]
            top = best.get((case, d, n, scale))
            row.append(f"{top[0]:.3f} ({top[1]})" if top else "")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _machine_line(machine, minutes):
    load = machine.get("load_average")
    end = machine.get("load_average_end")
    return (
        f"Machine: {machine.get('cpu')}, {machine.get('usable_cpus')} of "
        f"{machine.get('cpus')} CPUs, {machine.get('memory_gib')} GiB; "
        f"load average {load} at the start, {end} at the end; "
        f"{machine.get('system')}, Python {machine.get('python')}, "
        f"TensorFlow {machine.get('tensorflow')}, Keras "
        f"{machine.get('keras')} ({machine.get('backend')} backend). "
        f"Total {minutes:.1f} min."
    )


def report(records, command, machine, minutes, settings):
    """The Markdown report: settings, tables, legend, command, machine."""
    legend = (
        "Columns: `sigmoid T` = `SigmoidRanker(T)` (temperature in score "
        "units), `rel sigmoid T` = `SigmoidRanker(T, relative=True)` "
        "(temperature relative to each list's standard deviation), "
        "`neuralsort T` = `NeuralSortRanker(T)`, preset names = "
        "`keras_sodeep.pretrained(name)`, `default` = each loss's "
        f"`ranker=None` ({_default_description()}). "
        '"skipped": a fixed-length sorter away from its length, a ranker '
        "above its largest n, or a run above the memory budget. "
        '"best analytic": the best mean over the sigmoid and NeuralSort '
        "columns."
    )
    return "\n".join(
        [
            "## Surrogate quality",
            "",
            f"Free scores `x = scale * theta`, `theta ~ N(0, 1)` independent "
            f"of the targets, optimized with Adam(lr={settings['lr']}) for "
            f"{settings['steps']} steps on the loss; the exact metric "
            f"reached, mean ± std over {settings['seeds']} seeds of "
            f"{LISTS} lists each (the recall case: one set of n "
            "embeddings per seed).",
            "",
            surrogate_table(records),
            legend,
            "",
            f"Command: `{command}`",
            "",
            _machine_line(machine, minutes),
            "",
        ]
    )


def _default_description():
    """Each case's loss and its default ranker, e.g. "SpearmanLoss: ..."."""
    parts = []
    for case in CASES:
        loss = type(_LOSSES[case]("exact"))
        default = repr(loss.default_ranker())
        parts.append(f"{loss.__name__}: `{default}`")
    return "; ".join(parts)


def run_and_report(
    rankers=None,
    quick=False,
    sizes=None,
    scales=SCALES,
    cases=CASES,
    seeds=None,
    steps=STEPS,
    seed=0,
    output=None,
    json_path=None,
    command="python benchmarks/surrogate.py",
    log=None,
    starts=("normal",),
):
    """Runs the benchmark, prints the report and writes it to ``output``.

    Args:
        rankers: as for `run_benchmark`. Defaults to `default_rankers`.
        quick: bool, the `QUICK` settings (sizes, targets, seeds) unless
            given. Defaults to ``False``.
        sizes, scales, cases, seeds, steps, seed, starts: as for
            `run_benchmark`.
        output: path of the Markdown report. Defaults to
            ``benchmarks/results/surrogate.md`` beside this file.
        json_path: path for the records, the best analytic figure of each
            cell and the machine as JSON, or ``None``.
        command: str, the command shown in the report.
        log: callable for progress lines, or ``None``.

    Returns:
        0.
    """
    settings = dict(QUICK) if quick else {"targets": TARGETS}
    sizes = sizes or settings.get("sizes", SIZES)
    seeds = seeds or settings.get("seeds", SEEDS)
    if output is None:
        here = os.path.dirname(os.path.abspath(__file__))
        output = os.path.join(here, "results", "surrogate.md")
    machine = machine_description()
    start = time.time()
    records = run_benchmark(
        rankers,
        cases=cases,
        sizes=sizes,
        scales=scales,
        targets=settings["targets"],
        seeds=seeds,
        steps=steps,
        seed=seed,
        log=log,
        starts=starts,
    )
    machine["load_average_end"] = machine_description().get("load_average")
    text = report(
        records,
        command,
        machine,
        (time.time() - start) / 60,
        {"lr": LEARNING_RATE, "steps": steps, "seeds": seeds},
    )
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            best = [
                dict(
                    zip(("case", "targets", "n", "scale"), key),
                    mean=m,
                    ranker=k,
                )
                for key, (m, k) in best_analytic(records).items()
            ]
            json.dump(
                {"machine": machine, "records": records, "best_analytic": best},
                f,
                indent=2,
            )
    return 0


def build_parser():
    """The options of ``python benchmarks/surrogate.py``."""
    parser = argparse.ArgumentParser(
        description=(
            "Free scores optimized with Adam on each loss, per ranker: the "
            "exact metric reached. Prints a Markdown report and writes it "
            "to --output."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: n in {16, 100}, paper targets only, 2 seeds",
    )
    parser.add_argument(
        "--sizes",
        type=comma_list(int, "sizes"),
        default=None,
        help="comma-separated list lengths (default: 16,100,1000)",
    )
    parser.add_argument(
        "--scales",
        type=comma_list(float, "scales"),
        default=None,
        help="initial score scales (default: 0.01,1,100)",
    )
    parser.add_argument(
        "--cases",
        type=comma_list(str, "cases"),
        default=None,
        help=f"subset of {','.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--starts",
        type=comma_list(str, "starts"),
        default=None,
        help=f"initial parameters of the map and ndcg cases, among "
        f"{','.join(STARTS)} (default: normal)",
    )
    parser.add_argument(
        "--rankers",
        type=comma_list(str, "rankers"),
        default=None,
        help="comma-separated rankers: default, sigmoid[:T], "
        "sigmoid:T:relative, neuralsort[:T], untrained:ARCH, preset names "
        "or folders (default: see `default_rankers`)",
    )
    parser.add_argument(
        "--seeds", type=positive(int), default=None, help="seeds (default: 3)"
    )
    parser.add_argument(
        "--steps",
        type=positive(int),
        default=STEPS,
        help=f"Adam steps (default: {STEPS})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown report (default: benchmarks/results/surrogate.md)",
    )
    parser.add_argument(
        "--json", help="also write the records to this file as JSON"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr"
    )
    return parser


def main(argv=None):
    """Runs ``python benchmarks/surrogate.py [options]``; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for case in args.cases or ():
        if case not in CASES:
            parser.error(
                f"--cases should be among {','.join(CASES)}. Received: {case!r}"
            )
    for start in args.starts or ():
        if start not in STARTS:
            parser.error(
                f"--starts should be among {','.join(STARTS)}. "
                f"Received: {start!r}"
            )
    command = ["python benchmarks/surrogate.py"] + ["--quick"] * args.quick
    for flag in ("sizes", "scales", "cases", "starts", "rankers"):
        if getattr(args, flag):
            values = ",".join(map(str, getattr(args, flag)))
            command.append(f"--{flag} {values}")
    for flag, default in (("seeds", None), ("steps", STEPS), ("seed", 0)):
        if getattr(args, flag) != default:
            command.append(f"--{flag} {getattr(args, flag)}")
    return run_and_report(
        rankers=args.rankers,
        quick=args.quick,
        sizes=args.sizes,
        scales=args.scales or SCALES,
        cases=args.cases or CASES,
        seeds=args.seeds,
        steps=args.steps,
        seed=args.seed,
        output=args.output,
        json_path=args.json,
        starts=tuple(args.starts or ("normal",)),
        command=" ".join(command),
        log=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )


if __name__ == "__main__":
    sys.exit(main())
