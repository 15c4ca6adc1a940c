"""The cost of each ranker inside `SpearmanLoss`.

`benchmark_rankers` times the forward and backward pass of
``SpearmanLoss(ranker=..., axis=-1)`` on a batch of lists, for each ranker,
list length and execution mode, and measures the peak memory of the runs;
`speed_table` turns the records into a Markdown table with the ratios to
the exact floor and the targets.

```
python benchmarks/speed.py --untrained gru      # the README table
python benchmarks/speed.py --sizes 16,100 --modes xla   # a quick look
```

What is timed, per (ranker, n, mode):

```
step(y_true, y_pred) = SpearmanLoss(ranker=ranker, axis=-1)(y_true, y_pred)
                       and its gradient with respect to y_pred
time = median over repeated calls of step, after one warm-up call
```

on ``batch_size`` lists of ``n`` scores (normal, fixed seed), n in
{16, 100, 1000, 10000} by default. The exact floor is the forward pass
alone with ``ExactRanker`` (``exact_rank``: its ranks have no gradient);
the ratios of the table are to it. The reference of the n = 100 target is
the train step that needs no ranker at all: MSE between the predictions
and the targets' exact normalized ranks, forward and backward (``mse``),
plus the backward pass of a one-layer model, ``Dense(1)`` applied to every
item of the same batch (``features`` inputs per item), i.e. the gradient
of ``sum(Dense(x) * g)`` with respect to its kernel and bias. Modes:
``eager`` (plain calls), ``function`` (``tf.function``) and ``xla``
(``tf.function(jit_compile=True)``). Memory is the peak of TensorFlow's
CPU allocator (``tf.config.experimental.get_memory_info``) during the timed
calls, above what was allocated before them (the inputs, the weights): the
tensors the step allocates, XLA's buffers included, not the Python heap.

The timing needs the TensorFlow backend (``tf.function``,
``tf.GradientTape``).
"""

import argparse
import json
import sys

from _keras_sodeep_cli import import_tensorflow_quietly

import_tensorflow_quietly()

import statistics  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    available_bytes,
    comma_list,
    machine_description,
    positive,
)

import keras_sodeep  # noqa: E402
from keras_sodeep import ranking, sorters  # noqa: E402
from keras_sodeep.losses import SpearmanLoss  # noqa: E402
from keras_sodeep.ranking import exact_rank  # noqa: E402

# The ranker of `SpearmanLoss()`, the loss timed here.
_DEFAULT = SpearmanLoss.default_ranker()

DEFAULT_VS_REF_TARGET = 2.0
"""The default's target at n = 100: its time over the train step with MSE
on the targets' normalized ranks (the ``mse`` and ``Dense(1)``
references)."""

DEFAULT_VS_SIGMOID_TARGET = 0.3
"""The default's target at n = 1000: its time over `SigmoidRanker`'s."""

MODES = ("eager", "function", "xla")
"""Execution modes: plain calls, ``tf.function``, and with XLA."""

SIZES = (16, 100, 1000, 10000)
"""Default list lengths."""

EXACT = "exact"
DENSE = "dense"
MSE = "mse"
UNTRAINED = tuple(
    name
    for name, entry in sorters.ARCHITECTURES.items()
    if entry.lengths != "fixed"
)
"""Untrained sorters a benchmark may include (same cost as trained ones):
the length-generic architectures of ``keras_sodeep.sorters.ARCHITECTURES``.

Their specifications are ``"untrained:NAME"`` (``keras_sodeep.ranking.get``),
so that they never shadow a preset of the same name."""
_UNTRAINED_PREFIX = "untrained:"


def _untrained_name(spec):
    """``NAME`` for an ``"untrained:NAME"`` specification, else ``None``."""
    if isinstance(spec, str) and spec.startswith(_UNTRAINED_PREFIX):
        name = spec[len(_UNTRAINED_PREFIX) :]
        if name in UNTRAINED:
            return name
    return None


_MODE_TITLES = {"eager": "eager", "function": "tf.function", "xla": "XLA"}
# Bytes of float32 n x n tensors held at once by a quadratic ranker's
# forward and backward pass (eager mode keeps the most), per list element.
_QUADRATIC_BYTES = 4 * 8


def _tf():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "The speed benchmark times tf.function and XLA: it needs the "
            "TensorFlow backend (KERAS_BACKEND=tensorflow). Received: "
            f"backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    return tf


def _describe(obj):
    config = obj.get_config()
    args = ", ".join(
        f"{k}={config[k]}" for k in ("temperature",) if k in config
    )
    return f"{type(obj).__name__}({args})"


def default_rankers(untrained=(), include_presets=True):
    """The ranker specifications of a default benchmark run.

    Args:
        untrained: names from `UNTRAINED` (``"gru"``, ``"lstm"``,
            ``"histogram"``): untrained length-generic sorters to include,
            labelled as such. Defaults to ``()``.
        include_presets: bool, whether to include every installed preset
            (``keras_sodeep.list_presets()``). Defaults to ``True``.

    Returns:
        A list of specifications for `benchmark_rankers`: ``"exact"``, the
        loss's default ranker (``SpearmanLoss.default_ranker()``),
        ``"sigmoid:0.1"`` (if it is not the default), ``"neuralsort:1.0"``,
        the presets, then the untrained sorters.
    """
    specs = [EXACT, "default"]
    default = ranking.get(_DEFAULT)
    if not (
        isinstance(default, ranking.SigmoidRanker)
        and default.temperature == 0.1
    ):
        specs.append("sigmoid:0.1")
    specs.append("neuralsort:1.0")
    if include_presets:
        specs.extend(sorted(keras_sodeep.list_presets()))
    for name in untrained:
        if name not in UNTRAINED:
            raise ValueError(
                f"`untrained` should name sorters among {sorted(UNTRAINED)}. "
                f"Received: {name!r}"
            )
        specs.append(_UNTRAINED_PREFIX + name)
    return specs


def _build_ranker(spec):
    """Returns (label, ranker or sorter, is_quadratic, max_length)."""
    ranker = ranking.get(_DEFAULT if spec == "default" else spec)
    if isinstance(ranker, ranking.SorterRanker):
        ranker = ranker.sorter
    if spec == "default":
        label = f"{_DEFAULT!r} (the default)"
    elif spec == EXACT:
        label = "exact_rank (floor, forward only)"
    elif _untrained_name(spec):
        generic_lstm = "seq_len=None" if ranker.seq_len is None else ""
        if not isinstance(ranker, sorters.LSTMSorter):
            generic_lstm = ""
        label = f"{type(ranker).__name__}({generic_lstm}) untrained"
    elif isinstance(ranker, ranking.Ranker):
        label = _describe(ranker)
    else:
        label = f"preset {spec}"
    quadratic = isinstance(
        ranker, (ranking.SigmoidRanker, ranking.NeuralSortRanker)
    )
    max_length = getattr(ranker, "seq_len", None)
    return label, ranker, quadratic, max_length


def _spearman_step(tf, ranker, forward_only):
    loss = SpearmanLoss(ranker=ranker, axis=-1)

    def step(y_true, y_pred):
        if forward_only:
            return loss(y_true, y_pred)
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred)
        return value, tape.gradient(value, y_pred)

    return step


def _mse_step(tf):
    def step(y_true, y_pred):
        targets = exact_rank(y_true, axis=-1) / y_true.shape[-1]
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = keras.ops.mean(keras.ops.square(y_pred - targets))
        return value, tape.gradient(value, y_pred)

    return step


def _dense_step(tf, features):
    dense = keras.layers.Dense(1)
    dense.build((None, None, features))

    def step(x, upstream):
        with tf.GradientTape() as tape:
            out = keras.ops.squeeze(dense(x), -1)
            objective = keras.ops.sum(out * upstream)
        return tape.gradient(objective, dense.trainable_variables)

    return step


def _run(tf, fn, args, repeats, min_repeats, budget_s, max_call_s):
    """Times `fn(*args)`: (first call s, median s, runs, peak bytes)."""
    memory = getattr(tf.config.experimental, "get_memory_info", None)

    def call():
        start = time.perf_counter()
        out = fn(*args)
        for t in tf.nest.flatten(out):
            t.numpy()
        return time.perf_counter() - start

    first = call()
    times = []
    base = None
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        base = memory("CPU:0")["current"]
    except (ValueError, TypeError, AttributeError):
        memory = None
    start = time.perf_counter()
    while len(times) < repeats and (
        len(times) < min_repeats or time.perf_counter() - start < budget_s
    ):
        times.append(call())
        if times[-1] > max_call_s:
            break  # Too slow to repeat.
    peak = None
    if memory is not None:
        peak = max(memory("CPU:0")["peak"] - base, 0)
    return first, statistics.median(times), len(times), peak


def benchmark_rankers(
    rankers=None,
    sizes=SIZES,
    modes=MODES,
    batch_size=64,
    features=16,
    repeats=30,
    min_repeats=3,
    budget_s=2.0,
    max_call_s=10.0,
    seed=0,
    log=None,
):
    """Times each ranker inside `SpearmanLoss`, forward and backward.

    See the module docstring for what is measured. A quadratic ranker
    (``SigmoidRanker``, ``NeuralSortRanker``) is skipped at lengths where its
    ``n x n`` tensors would not fit in half the available memory; a
    fixed-length sorter at lengths beyond its ``seq_len``.

    Args:
        rankers: list of specifications: ``"exact"`` (the floor),
            ``"default"`` (``SpearmanLoss.default_ranker()``),
            ``"untrained:NAME"`` for ``NAME`` in `UNTRAINED`, or anything
            ``keras_sodeep.ranking.get`` accepts
            (``"sigmoid:0.1"``, ``"neuralsort:1.0"``, a preset name or
            folder). Defaults to `default_rankers()`. The floor and the
            ``Dense`` reference are always measured.
        sizes: list lengths ``n``. Defaults to `SIZES`.
        modes: subset of `MODES`. Defaults to all three.
        batch_size: int, lists per batch. Defaults to 64.
        features: int, inputs per item of the ``Dense`` reference.
            Defaults to 16.
        repeats: int, the most timed calls per measurement. Defaults to 30.
        min_repeats: int, the fewest timed calls. Defaults to 3.
        budget_s: float, seconds after which no new call starts once
            ``min_repeats`` calls are done. Defaults to 2.0.
        max_call_s: float, a timed call longer than this is not repeated
            (the measurement has fewer than ``min_repeats`` runs); a
            measurement whose calls would take longer, judging from the
            same ranker and mode at a shorter length (time grows at least
            linearly with ``n``), is skipped. Defaults to 10.0.
        seed: int, seed of the inputs. Defaults to 0.
        log: optional callable receiving one line per measurement.

    Returns:
        A list of dicts, one per measurement: ``ranker`` (the
        specification), ``label``, ``n``, ``mode``, ``seconds`` (median),
        ``first_seconds`` (the warm-up call: tracing and compilation
        included), ``runs``, ``peak_bytes`` (or ``None``), ``skipped``
        (a reason, or ``None``) and ``length_generic`` (a sorter with
        ``seq_len=None``).
    """
    tf = _tf()
    for mode in modes:
        if mode not in MODES:
            raise ValueError(
                f"`modes` should be among {MODES}. Received: {mode!r}"
            )
    specs = list(default_rankers() if rankers is None else rankers)
    specs = [EXACT] + [s for s in specs if s != EXACT]
    rng = np.random.default_rng(seed)
    available = available_bytes()
    records = []

    def add(record):
        records.append(record)
        if log is not None:
            if record["skipped"]:
                log(
                    f"{record['label']:<40} n={record['n']:<6} "
                    f"{record['mode']:<8} skipped: {record['skipped']}"
                )
            else:
                log(
                    f"{record['label']:<40} n={record['n']:<6} "
                    f"{record['mode']:<8} {1e3 * record['seconds']:10.3f} ms "
                    f"({record['runs']} runs)"
                )

    built, last = {}, {}
    for n in sizes:
        y_true = tf.constant(rng.normal(size=(batch_size, n)), "float32")
        y_pred = tf.constant(rng.normal(size=(batch_size, n)), "float32")
        x = tf.constant(rng.normal(size=(batch_size, n, features)), "float32")
        upstream = tf.constant(rng.normal(size=(batch_size, n)), "float32")
        jobs = [
            (DENSE, "Dense(1) backward (reference)", None, False, None),
            (MSE, "MSE on the targets' ranks (reference)", None, False, None),
        ]
        for spec in specs:
            if spec not in built:
                built[spec] = _build_ranker(spec)
            label, ranker, quadratic, max_length = built[spec]
            jobs.append((spec, label, ranker, quadratic, max_length))
        for spec, label, ranker, quadratic, max_length in jobs:
            generic = isinstance(ranker, sorters.Sorter) and max_length is None
            skipped = None
            if max_length is not None and n > max_length:
                skipped = f"lists longer than seq_len={max_length}"
            needed = batch_size * n * n * _QUADRATIC_BYTES
            if quadratic and available and needed > available / 2:
                skipped = f"needs about {needed / 2**30:.0f} GiB"
            for mode in modes:
                record = {
                    "ranker": spec,
                    "label": label,
                    "n": n,
                    "mode": mode,
                    "seconds": None,
                    "first_seconds": None,
                    "runs": 0,
                    "peak_bytes": None,
                    "skipped": skipped,
                    "length_generic": generic,
                }
                previous = last.get((spec, mode))
                if not skipped and previous:
                    # Time grows at least linearly with the length.
                    estimate = previous[1] * n / previous[0]
                    if estimate > max_call_s:
                        record["skipped"] = (
                            f"about {estimate:.0f} s or more per call"
                        )
                if record["skipped"]:
                    add(record)
                    continue
                if spec == DENSE:
                    step = _dense_step(tf, features)
                    args = (x, upstream)
                elif spec == MSE:
                    step = _mse_step(tf)
                    args = (y_true, y_pred)
                else:
                    step = _spearman_step(tf, ranker, spec == EXACT)
                    args = (y_true, y_pred)
                if mode == "function":
                    step = tf.function(step)
                elif mode == "xla":
                    step = tf.function(step, jit_compile=True)
                first, seconds, runs, peak = _run(
                    tf, step, args, repeats, min_repeats, budget_s, max_call_s
                )
                record.update(
                    seconds=seconds,
                    first_seconds=first,
                    runs=runs,
                    peak_bytes=peak,
                )
                add(record)
                last[(spec, mode)] = (n, seconds)
    return records


def _verdict(met):
    return "met" if met else "not met"


def _index(records):
    return {(r["ranker"], r["n"], r["mode"]): r for r in records}


def target_figures(records):
    """Ratios of the targets, per mode, from `benchmark_rankers` records.

    Returns:
        A dict from mode to a dict with, where measured: ``default_vs_ref``
        at n = 100 (the default ranker's forward + backward over the MSE
        reference's plus the ``Dense`` reference's backward; the target is
        `DEFAULT_VS_REF_TARGET`) and, for each length-generic
        sorter ``SPEC`` measured at n = 1000 (``"default"``, a preset or
        ``"untrained:NAME"``), ``SPEC_vs_sigmoid``: its time over the
        ``SigmoidRanker``'s (the default ranker when it is one, else
        ``"sigmoid:0.1"``); the default's target is
        `DEFAULT_VS_SIGMOID_TARGET`.
    """
    index = _index(records)
    default = ranking.get(_DEFAULT)
    out = {}
    for mode in MODES:
        figures = {}

        def seconds(spec, n):
            record = index.get((spec, n, mode))
            return record and record["seconds"]

        default_s = seconds("default", 100)
        mse_s = seconds(MSE, 100)
        dense_s = seconds(DENSE, 100)
        if default_s and mse_s and dense_s:
            figures["default_vs_ref"] = default_s / (mse_s + dense_s)
        sigmoid_spec = (
            "default"
            if isinstance(default, ranking.SigmoidRanker)
            else "sigmoid:0.1"
        )
        sigmoid_s = seconds(sigmoid_spec, 1000)
        generic = [
            r["ranker"]
            for r in records
            if r["n"] == 1000
            and r["mode"] == mode
            and (_untrained_name(r["ranker"]) or r.get("length_generic"))
        ]
        for spec in generic:
            sorter_s = seconds(spec, 1000)
            if sorter_s and sigmoid_s:
                figures[f"{spec}_vs_sigmoid"] = sorter_s / sigmoid_s
        if figures:
            out[mode] = figures
    return out


def _format_time(seconds):
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{1e3 * seconds:.3g} ms"
    return f"{1e6 * seconds:.3g} µs"


def speed_table(records, machine=None):
    """The Markdown report of `benchmark_rankers` records.

    One row per ranker and list length; per mode, the median time of the
    forward and backward pass and its ratio to the exact floor's forward
    pass in the same mode, then the peak memory per mode. The targets and
    the machine follow.

    Args:
        records: the list returned by `benchmark_rankers`.
        machine: optional dict from `machine_description`.

    Returns:
        A string of Markdown.
    """
    index = _index(records)
    modes = [m for m in MODES if any(r["mode"] == m for r in records)]
    sizes = sorted({r["n"] for r in records})
    specs = []
    for r in records:
        if r["ranker"] not in specs:
            specs.append(r["ranker"])
    labels = {r["ranker"]: r["label"] for r in records}
    header = ["n", "ranker"] + [_MODE_TITLES[m] for m in modes]
    header.append("peak MiB (" + " / ".join(_MODE_TITLES[m] for m in modes))
    header[-1] += ")"
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", ":---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for n in sizes:
        for spec in specs:
            cells, memory = [], []
            for mode in modes:
                record = index.get((spec, n, mode))
                if record is None:
                    cells.append("")
                    memory.append("")
                    continue
                if record["skipped"]:
                    cells.append(f"skipped: {record['skipped']}")
                    memory.append("-")
                    continue
                text = _format_time(record["seconds"])
                if record["runs"] == 1:
                    text += " (1 run)"
                floor = index.get((EXACT, n, mode))
                if spec != EXACT and floor and floor["seconds"]:
                    text += f" ({record['seconds'] / floor['seconds']:.3g}x)"
                cells.append(text)
                peak = record["peak_bytes"]
                memory.append("?" if peak is None else f"{peak / 2**20:.3g}")
            if all(c == "" for c in cells):
                continue
            row = [str(n), labels[spec]] + cells + [" / ".join(memory)]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Times are medians of repeated calls after a warm-up call, for "
        "a batch of lists; (Nx) is the ratio to the exact floor in the "
        "same mode. Peak MiB: TensorFlow's CPU allocator, above the inputs."
    )
    targets = target_figures(records)
    if targets:
        lines.append("")
        lines.append("Targets:")
        for mode, figures in targets.items():
            if "default_vs_ref" in figures:
                ratio = figures["default_vs_ref"]
                lines.append(
                    f"- {_MODE_TITLES[mode]}, n = 100: default ranker / "
                    "(MSE on the targets' ranks + Dense(1) backward) = "
                    f"{ratio:.2f} (target <= {DEFAULT_VS_REF_TARGET:g}: "
                    f"{_verdict(ratio <= DEFAULT_VS_REF_TARGET)})"
                )
            for key, ratio in figures.items():
                if not key.endswith("_vs_sigmoid"):
                    continue
                spec = key[: -len("_vs_sigmoid")]
                line = (
                    f"- {_MODE_TITLES[mode]}, n = 1000: {labels[spec]} / "
                    f"SigmoidRanker = {ratio:.2f}"
                )
                if spec == "default":
                    target = DEFAULT_VS_SIGMOID_TARGET
                    line += (
                        f" (target <= {target:g}: {_verdict(ratio <= target)})"
                    )
                lines.append(line)
    if machine:
        lines.append("")
        load = machine.get("load_average")
        lines.append(
            f"Machine: {machine['cpu']}, {machine['usable_cpus']} of "
            f"{machine['cpus']} CPUs usable, {machine['memory_gib']} GiB; "
            f"{machine['system']}, Python {machine['python']}, TensorFlow "
            f"{machine['tensorflow']}, Keras {machine['keras']}" + "."
        )
        end = machine.get("load_average_end")
        if load:
            lines.append(
                f"Load average (1 min) {load[0]} at the start"
                + (f", {end[0]} at the end" if end else "")
                + f", on {machine['usable_cpus']} CPUs."
            )
    return "\n".join(lines)


def build_parser():
    """The options of ``python benchmarks/speed.py``."""
    parser = argparse.ArgumentParser(
        description=(
            "Times the forward and backward pass of SpearmanLoss with each "
            "ranker (the exact floor, the default ranker, NeuralSort, the "
            "installed presets, untrained sorters on request) on a batch of "
            "lists, eagerly, in tf.function and with XLA, and prints a "
            "Markdown table with the ratios to the exact floor, the peak "
            "memory and the machine."
        ),
    )
    parser.add_argument(
        "--sizes",
        type=comma_list(int, "sizes"),
        default=SIZES,
        help="comma-separated list lengths (default: 16,100,1000,10000)",
    )
    parser.add_argument(
        "--modes",
        type=comma_list(str, "modes"),
        default=MODES,
        help="comma-separated subset of eager,function,xla",
    )
    parser.add_argument(
        "--rankers",
        type=comma_list(str, "rankers"),
        default=None,
        help="comma-separated rankers: exact, default, sigmoid[:T], "
        "sigmoid:T:relative, neuralsort[:T], untrained:ARCH, preset names "
        "or folders (default: exact, default, neuralsort:1.0 and the "
        "installed presets)",
    )
    parser.add_argument(
        "--untrained",
        type=comma_list(str, "untrained"),
        default=(),
        help="untrained length-generic sorters to add: " + ", ".join(UNTRAINED),
    )
    parser.add_argument(
        "--no-presets", action="store_true", help="leave the presets out"
    )
    parser.add_argument("--batch-size", type=positive(int), default=64)
    parser.add_argument(
        "--features",
        type=positive(int),
        default=16,
        help="inputs per item of the Dense(1) reference",
    )
    parser.add_argument("--repeats", type=positive(int), default=30)
    parser.add_argument("--min-repeats", type=positive(int), default=3)
    parser.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds of timed calls per measurement, beyond --min-repeats",
    )
    parser.add_argument(
        "--max-call",
        type=positive(float),
        default=10.0,
        help="seconds per call above which a measurement is not repeated "
        "or, estimated from a shorter length, skipped",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the records to this file")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr"
    )
    return parser


def main(argv=None):
    """Runs the benchmark and prints its Markdown table; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for mode in args.modes:
        if mode not in MODES:
            parser.error(
                f"--modes should be among {','.join(MODES)}. Received: {mode!r}"
            )
    rankers = args.rankers
    if rankers is None:
        try:
            rankers = default_rankers(
                untrained=args.untrained, include_presets=not args.no_presets
            )
        except ValueError as error:
            parser.error(str(error))
    else:
        rankers = list(rankers) + [f"untrained:{n}" for n in args.untrained]
    machine = machine_description()
    records = benchmark_rankers(
        rankers,
        sizes=args.sizes,
        modes=args.modes,
        batch_size=args.batch_size,
        features=args.features,
        repeats=args.repeats,
        min_repeats=args.min_repeats,
        budget_s=args.budget,
        max_call_s=args.max_call,
        seed=args.seed,
        log=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    machine["load_average_end"] = machine_description()["load_average"]
    print(speed_table(records, machine))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "records": records}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
