"""The `keras-sodeep` command line.

Each subcommand is a small function that parses its arguments and calls the
library; the work itself lives in the module whose idea it is.

```
keras-sodeep demo                 # train a tiny model with a rank metric
keras-sodeep presets              # the pretrained sorters and their fidelity
keras-sodeep train --arch lstm --output DIR   # train a sorter (re-run resumes)
keras-sodeep evaluate sigmoid:0.1 # fidelity of a sorter or ranker
keras-sodeep bench --untrained gru  # cost of the rankers in SpearmanLoss
keras-sodeep bench --surrogate    # what each ranker does for a rank loss
```
"""

import argparse
import json
import os
import sys

from keras_sodeep.sorters import ARCHITECTURES


def _demo(args):
    """Why a rank loss: MSE against SpearmanLoss() on a distorted target.

    The target is an unknown increasing function of a linear score,
    ``y = exp(3 z)``, and 5 % of the samples are outliers multiplied by 50
    to 500 (sensor glitches, say). Only the order of ``y`` is reliable:
    MSE chases the large values and the outliers, ``SpearmanLoss()`` (the
    learned SoDeep sorter by default) fits the order. Prints the held-out
    Spearman correlation of each, before and after training, measured with
    the exact `SpearmanCorrelation` metric.
    """
    import keras
    import numpy as np

    from keras_sodeep.losses import SpearmanLoss
    from keras_sodeep.metrics import SpearmanCorrelation

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.samples, 8)).astype("float32")
    w = rng.normal(size=(8,)).astype("float32") / np.sqrt(8.0)
    y = np.exp(3.0 * (x @ w))
    outliers = rng.random(args.samples) < 0.05
    y[outliers] *= rng.uniform(50.0, 500.0, size=int(outliers.sum()))
    y = y.astype("float32")
    split = args.samples * 3 // 4
    print("keras_sodeep demo: y = exp(3 z) with 5 % outliers, z linear in x")
    print(
        f"  {split} training and {args.samples - split} held-out samples, "
        f"{args.epochs} epoch{'s' * (args.epochs != 1)}; SpearmanLoss() "
        "ranks with the learned "
        f"{SpearmanLoss.default_ranker()!r}"
    )
    print("  loss          Spearman rho before   after")
    for name, loss in (("mse", "mse"), ("SpearmanLoss", SpearmanLoss())):
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=loss,
            metrics=[SpearmanCorrelation()],
        )
        held_out = (x[split:], y[split:])
        before = model.evaluate(*held_out, verbose=0, return_dict=True)
        model.fit(
            x[:split],
            y[:split],
            batch_size=64,
            epochs=args.epochs,
            verbose=2 if args.verbose else 0,
        )
        after = model.evaluate(*held_out, verbose=0, return_dict=True)
        print(
            f"  {name:<13} {before['spearman']:>20.4f} "
            f"{after['spearman']:>7.4f}"
        )
    return 0


def _add_demo_command(subparsers):
    parser = subparsers.add_parser(
        "demo", help="train a tiny model with a rank metric"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(func=_demo)


def _presets(args):
    """Prints the pretrained sorters and their fidelity figures."""
    from keras_sodeep.presets import cache_dir, list_presets, presets_table

    info = list_presets()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    if not info:
        print(
            "No pretrained sorter presets are installed: the package's "
            "presets/ folder holds none yet."
        )
        return 0
    print(presets_table(info))
    print()
    print(
        f"Cache: {cache_dir()} (KERAS_SODEEP_HOME moves it); "
        "`--json` shows each preset's download URL and checksums."
    )
    return 0


def _add_presets_command(subparsers):
    parser = subparsers.add_parser(
        "presets", help="list the pretrained sorters and their fidelity"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the metadata as JSON"
    )
    parser.set_defaults(func=_presets)


def _train(args):
    """Trains a sorter on synthetic lists and exports a preset folder."""
    import keras

    from keras_sodeep import sorters, training

    keras.utils.set_random_seed(args.seed)
    seq_len = args.seq_len
    if args.min_seq_len is not None:
        seq_len = (args.min_seq_len, args.seq_len)
    entry = sorters.ARCHITECTURES[args.arch]
    kwargs = {}
    for option, value, argument in (
        ("--units", args.units, entry.width),
        ("--num-layers", args.num_layers, entry.depth),
    ):
        if value is None:
            continue
        if argument is None:
            raise SystemExit(
                f"keras-sodeep train: {option} does not apply to --arch "
                f"{args.arch}."
            )
        kwargs[argument] = value
    if args.anchors is not None:
        if args.arch != "histogram":
            raise SystemExit(
                "keras-sodeep train: --anchors applies to --arch histogram "
                f"only. Received: --arch {args.arch}"
            )
        try:
            kwargs["anchors"] = tuple(int(a) for a in args.anchors.split(","))
        except ValueError:
            raise SystemExit(
                "keras-sodeep train: --anchors should be comma-separated "
                f"ints, e.g. 16,16,16. Received: --anchors {args.anchors}"
            ) from None
    if args.gradient_temperature is not None:
        kwargs["gradient_temperature"] = args.gradient_temperature
    if args.padded and args.min_seq_len is not None:
        # A fixed-length sorter that sees shorter lists padded and masked.
        sorter = sorters.build_sorter(args.arch, args.seq_len, **kwargs)
    else:
        sorter = sorters.build_sorter(args.arch, seq_len, **kwargs)
    _, metadata = training.train_sorter(
        sorter,
        seq_len=seq_len,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        schedule=args.schedule,
        output_dir=args.output,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        eval_lists=args.eval_lists,
        verbose=2 if args.log_lines else "auto",
    )
    print(f"Preset written to {args.output}")
    if metadata.get("fidelity"):
        evaluation = metadata.get("evaluation") or {}
        print(
            training.fidelity_table(
                metadata["fidelity"],
                name=args.arch,
                seq_len=evaluation.get("seq_len", args.seq_len),
                num_lists=evaluation.get("num_lists"),
            )
        )
    return 0


def _add_train_command(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a sorter on synthetic lists (re-run to resume)",
        description=(
            "Trains a sorter on synthetic lists and writes a preset folder "
            "to --output. Checkpoints go to OUTPUT/backup every "
            "--checkpoint-every steps; running the same command again "
            "resumes from the last one."
        ),
    )
    parser.add_argument("--arch", choices=tuple(ARCHITECTURES), required=True)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument(
        "--min-seq-len",
        type=int,
        default=None,
        help="train on lengths in [min, seq-len] (a length-generic sorter, "
        "or with --padded a fixed-length one)",
    )
    parser.add_argument(
        "--padded",
        action="store_true",
        help="with --min-seq-len: a fixed-length sorter of --seq-len items "
        "that learns to rank shorter lists padded and masked, as "
        "SorterRanker gives them",
    )
    parser.add_argument(
        "--gradient-temperature",
        type=float,
        default=None,
        help="the sorter's smooth gradient (Sorter(gradient_temperature=)); "
        "outputs and training are unchanged, it is recorded in the preset",
    )
    parser.add_argument(
        "--units",
        type=int,
        default=None,
        help="width: units per recurrent direction (lstm, gru), filters "
        "(cnn), correction-head units (histogram)",
    )
    parser.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="depth: recurrent layers (lstm, gru), convolution blocks (cnn)",
    )
    parser.add_argument(
        "--anchors",
        default=None,
        help="histogram: anchors of each counting pass, comma-separated "
        "(default 64,256,256,256)",
    )
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--schedule", choices=("cosine", "constant"), default="cosine"
    )
    parser.add_argument("--output", required=True, help="preset folder")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints, a divisor of --steps "
        "(default: the largest divisor up to 1000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-lists",
        type=int,
        default=10000,
        help="lists of the final fidelity evaluation (0 skips it)",
    )
    parser.add_argument(
        "--log-lines",
        action="store_true",
        help="one line per epoch instead of a progress bar",
    )
    parser.set_defaults(func=_train)


def _parse_lengths(text):
    if text in ("auto", None):
        return None
    if text == "none":
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "--lengths should be 'auto', 'none' or comma-separated ints. "
            f"Received: {text!r}"
        ) from None


def _evaluate(args):
    """Prints the fidelity figures of a sorter or ranker (DESIGN 9.1)."""
    from keras_sodeep import ranking, synthetic, training

    seed = synthetic.EVALUATION_SEED if args.seed is None else args.seed
    ranker = ranking.get(args.sorter)
    if isinstance(ranker, ranking.SorterRanker):
        ranker = ranker.sorter
    seq_len = args.seq_len or getattr(ranker, "seq_len", None) or 100
    figures = training.evaluate_ranker(
        ranker,
        seq_len=seq_len,
        num_lists=args.num_lists,
        seed=seed,
        lengths=args.lengths,
        length_lists=args.length_lists,
        held_out_lists=args.held_out_lists,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        training.fidelity_table(
            figures, name=args.sorter, seq_len=seq_len, num_lists=args.num_lists
        )
    )
    return 0


def _add_evaluate_command(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a sorter or ranker against exact ranks",
        description=(
            "Measures how close a sorter or ranker comes to the exact ranks "
            "on synthetic lists (the paper's Table 1 protocol): L1 of the "
            "normalized ranks, Spearman rho, the fraction of lists ranked "
            "exactly, the L1 on rescaled lists, and the L1 on each held-out "
            "distribution with the worst of them."
        ),
    )
    parser.add_argument(
        "sorter",
        help="a preset folder or name, 'sigmoid[:TEMPERATURE]' (e.g. "
        "sigmoid:0.1, the paper's lambda = 10), 'sigmoid:T:relative' (T "
        "a fraction of each list's std), 'neuralsort[:TEMPERATURE]', "
        "'exact', or 'untrained:ARCH' (an untrained sorter, a baseline)",
    )
    parser.add_argument("--num-lists", type=int, default=10000)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the lists (default: the standard evaluation seed)",
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="list length (default: the sorter's, else 100)",
    )
    parser.add_argument(
        "--lengths",
        type=_parse_lengths,
        default=None,
        help="length sweep: 'auto' (10, 50, 100, 200, 500, 1000; for a "
        "fixed-length sorter those below its length, padded and masked), "
        "'none' or comma-separated ints",
    )
    parser.add_argument(
        "--length-lists",
        type=int,
        default=1000,
        help="lists per length of the sweep",
    )
    parser.add_argument(
        "--held-out-lists",
        type=int,
        default=None,
        help="lists per held-out distribution (wide, cauchy, exponential, "
        "clusters, near_ties, cosine); 0 skips them (default: "
        "min(--num-lists, 1000))",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as JSON"
    )
    parser.set_defaults(func=_evaluate)


def _parse_list(cast, name):
    def parse(text):
        try:
            return tuple(cast(v) for v in text.split(",") if v)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} should be comma-separated values. Received: {text!r}"
            ) from None

    return parse


def _load_benchmark(name):
    """Imports ``benchmarks/<name>.py`` of the source tree.

    Benchmark code stays out of the package's import path (DESIGN §2); it
    ships with a source checkout, beside the package.
    """
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "benchmarks", f"{name}.py")
    if not os.path.isfile(path):
        raise SystemExit(
            f"This command runs benchmarks/{name}.py from a source checkout "
            f"of keras_sodeep; it is not at {path}."
        )
    spec = importlib.util.spec_from_file_location(f"_sodeep_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_surrogate(args):
    """Runs the surrogate-quality benchmark (DESIGN 9.4)."""
    surrogate = _load_benchmark("surrogate")
    command = ["keras-sodeep bench --surrogate"] + ["--quick"] * args.quick
    for flag in ("sizes", "scales", "cases", "rankers"):
        if getattr(args, flag):
            values = ",".join(map(str, getattr(args, flag)))
            command.append(f"--{flag} {values}")
    for flag, default in (("seeds", None), ("steps", 100), ("seed", 0)):
        if getattr(args, flag) != default:
            command.append(f"--{flag} {getattr(args, flag)}")
    return surrogate.main(
        rankers=args.rankers,
        quick=args.quick,
        sizes=args.sizes,
        scales=args.scales or surrogate.SCALES,
        cases=args.cases or surrogate.CASES,
        seeds=args.seeds,
        steps=args.steps,
        seed=args.seed,
        output=args.output,
        json_path=args.json,
        command=" ".join(command),
        log=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )


def _bench(args):
    """Prints the cost of each ranker inside SpearmanLoss (DESIGN 9.2)."""
    if args.surrogate:
        return _bench_surrogate(args)
    from keras_sodeep import benchmarking

    rankers = args.rankers
    if rankers is None:
        rankers = benchmarking.default_rankers(
            untrained=args.untrained, include_presets=not args.no_presets
        )
    else:
        rankers = list(rankers) + [f"untrained:{n}" for n in args.untrained]
    machine = benchmarking.machine_description()
    records = benchmarking.benchmark_rankers(
        rankers,
        sizes=args.sizes or benchmarking.SIZES,
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
    machine["load_average_end"] = benchmarking.machine_description()[
        "load_average"
    ]
    print(benchmarking.speed_table(records, machine))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "records": records}, f, indent=2)
    return 0


def _add_bench_command(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="time the rankers inside SpearmanLoss",
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
        type=_parse_list(int, "sizes"),
        default=None,
        help="comma-separated list lengths (default: 16,100,1000,10000; "
        "with --surrogate 16,100,1000)",
    )
    parser.add_argument(
        "--modes",
        type=_parse_list(str, "modes"),
        default=("eager", "function", "xla"),
        help="comma-separated subset of eager,function,xla",
    )
    parser.add_argument(
        "--rankers",
        type=_parse_list(str, "rankers"),
        default=None,
        help="comma-separated rankers: exact, default, sigmoid[:T], "
        "sigmoid:T:relative, neuralsort[:T], untrained:ARCH, preset names "
        "or folders (default: exact, default, neuralsort:1.0 and the "
        "installed presets; with --surrogate, see benchmarks/surrogate.py)",
    )
    parser.add_argument(
        "--untrained",
        type=_parse_list(str, "untrained"),
        default=(),
        help="untrained length-generic sorters to add: gru, lstm, histogram",
    )
    parser.add_argument(
        "--no-presets", action="store_true", help="leave the presets out"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--features",
        type=int,
        default=16,
        help="inputs per item of the Dense(1) reference",
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds of timed calls per measurement, beyond --min-repeats",
    )
    parser.add_argument(
        "--max-call",
        type=float,
        default=10.0,
        help="seconds per call above which a measurement is not repeated "
        "or, estimated from a shorter length, skipped",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the records to this file")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr"
    )
    surrogate = parser.add_argument_group(
        "surrogate quality (--surrogate)",
        "Free scores optimized with Adam on each loss, per ranker: the "
        "exact metric reached (benchmarks/surrogate.py; needs a source "
        "checkout). --sizes, --rankers, --seed, --json and --quiet apply.",
    )
    surrogate.add_argument(
        "--surrogate",
        action="store_true",
        help="run the surrogate-quality benchmark instead of the timing",
    )
    surrogate.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: n in {16, 100}, paper targets only, 2 seeds",
    )
    surrogate.add_argument(
        "--scales",
        type=_parse_list(float, "scales"),
        default=None,
        help="initial score scales (default: 0.01,1,100)",
    )
    surrogate.add_argument(
        "--cases",
        type=_parse_list(str, "cases"),
        default=None,
        help="subset of spearman,map,recall (default: all)",
    )
    surrogate.add_argument(
        "--seeds", type=int, default=None, help="seeds (default: 3)"
    )
    surrogate.add_argument(
        "--steps", type=int, default=100, help="Adam steps (default: 100)"
    )
    surrogate.add_argument(
        "--output",
        default=None,
        help="Markdown report (default: benchmarks/results/surrogate.md)",
    )
    parser.set_defaults(func=_bench)


def build_parser():
    """Returns the `keras-sodeep` argument parser."""
    parser = argparse.ArgumentParser(
        prog="keras-sodeep",
        description="SoDeep learned sorters and rank losses for Keras.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_demo_command(subparsers)
    _add_presets_command(subparsers)
    _add_train_command(subparsers)
    _add_evaluate_command(subparsers)
    _add_bench_command(subparsers)
    return parser


def main(argv=None):
    """Runs the `keras-sodeep` command; returns its exit code.

    The console script enters through ``_keras_sodeep_cli.main``, which
    first imports TensorFlow without its start-up lines.
    """
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
