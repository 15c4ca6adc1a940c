"""The work of the ``keras-sodeep`` subcommands.

The command line's options and entry point are in the ``_keras_sodeep_cli``
module beside the package (``--help`` answers without importing Keras);
once the arguments are parsed it calls one of `COMMANDS` here with them,
an ``argparse.Namespace``. Each command calls the library and prints its
result; the work itself lives in the module whose idea it is.

A command reports a user's mistake by raising `UsageError` (exit status 2,
as argparse's own errors) or a refused request by raising `CommandError`
(status 1); the entry point prints either as one line.
"""

import json

import keras

from keras_sodeep import losses, metrics, ranking, sorters, synthetic, training


class CommandError(Exception):
    """A request a command refuses; printed as one line, exit status 1."""

    exit_status = 1


class UsageError(CommandError):
    """An argument a command cannot use; one line, exit status 2."""

    exit_status = 2


def demo(args):
    """Why a rank loss: MSE against SpearmanLoss() on a distorted target.

    The target is an unknown increasing function of a linear score,
    ``y = exp(3 z)``, and 5 % of the samples are outliers multiplied by 50
    to 500 (sensor glitches, say). Only the order of ``y`` is reliable:
    MSE chases the large values and the outliers, ``SpearmanLoss()`` (the
    learned SoDeep sorter by default) fits the order. Prints the held-out
    Spearman correlation of each, before and after training, measured with
    the exact `SpearmanCorrelation` metric.
    """
    import numpy as np

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.samples, 8)).astype("float32")
    w = rng.normal(size=(8,)).astype("float32") / np.sqrt(8.0)
    y = np.exp(3.0 * (x @ w))
    outliers = rng.random(args.samples) < 0.05
    y[outliers] *= rng.uniform(50.0, 500.0, size=int(outliers.sum()))
    y = y.astype("float32")
    split = args.samples * 3 // 4
    spearman_loss = losses.SpearmanLoss()
    print("keras_sodeep demo: y = exp(3 z) with 5 % outliers, z linear in x")
    print(
        f"  {split} training and {args.samples - split} held-out samples, "
        f"{args.epochs} epoch{'s' * (args.epochs != 1)}"
    )
    print(f"  SpearmanLoss() ranks with {spearman_loss.ranker!r}")
    print("  loss          Spearman rho before   after")
    for name, loss in (("mse", "mse"), ("SpearmanLoss", spearman_loss)):
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
            metrics=[metrics.SpearmanCorrelation()],
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


def presets(args):
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


def _sorter_options(args):
    """The sorter's constructor arguments the options give."""
    entry = sorters.ARCHITECTURES[args.arch]
    kwargs = {}
    for option, value, argument in (
        ("--units", args.units, entry.width),
        ("--num-layers", args.num_layers, entry.depth),
    ):
        if value is None:
            continue
        if argument is None:
            raise UsageError(f"{option} does not apply to --arch {args.arch}.")
        kwargs[argument] = value
    if args.anchors is not None:
        if args.arch != "histogram":
            raise UsageError(
                "--anchors applies to --arch histogram only. "
                f"Received: --arch {args.arch}"
            )
        kwargs["anchors"] = args.anchors
    if args.gradient_temperature is not None:
        kwargs["gradient_temperature"] = args.gradient_temperature
    return kwargs


def train(args):
    """Trains a sorter on synthetic lists and exports a preset folder."""
    if args.min_seq_len is not None and args.min_seq_len > args.seq_len:
        raise UsageError(
            "--min-seq-len should be at most --seq-len. Received: "
            f"--min-seq-len {args.min_seq_len} --seq-len {args.seq_len}"
        )
    if args.padded and args.min_seq_len is None:
        raise UsageError(
            "--padded trains on shorter lists padded to --seq-len: it needs "
            "--min-seq-len."
        )
    if args.checkpoint_every is not None and args.steps % args.checkpoint_every:
        raise UsageError(
            "--checkpoint-every should divide --steps (an epoch is "
            f"--checkpoint-every steps). Received: --steps {args.steps} "
            f"--checkpoint-every {args.checkpoint_every}"
        )
    keras.utils.set_random_seed(args.seed)
    seq_len = args.seq_len
    if args.min_seq_len is not None:
        seq_len = (args.min_seq_len, args.seq_len)
    kwargs = _sorter_options(args)
    if args.padded:
        # A fixed-length sorter that sees shorter lists padded and masked.
        sorter = sorters.build_sorter(args.arch, args.seq_len, **kwargs)
    else:
        try:
            sorter = sorters.build_sorter(args.arch, seq_len, **kwargs)
        except ValueError as error:  # e.g. a fixed-length arch and a range
            raise UsageError(str(error)) from None
    try:
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
    except training.RunFolderError as error:
        raise CommandError(str(error)) from None
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


def evaluate(args):
    """Prints the fidelity figures of a sorter or ranker."""
    seed = synthetic.EVALUATION_SEED if args.seed is None else args.seed
    try:
        ranker = ranking.get(args.sorter)
    except ValueError as error:  # an unknown preset, "sigmoid:abc", ...
        raise UsageError(str(error)) from None
    if isinstance(ranker, ranking.SorterRanker):
        ranker = ranker.sorter
    own_len = getattr(ranker, "seq_len", None)
    seq_len = args.seq_len or own_len or 100
    if own_len is not None and seq_len > own_len:
        raise UsageError(
            f"--seq-len should be at most {own_len}, the length of "
            f"{args.sorter}. Received: --seq-len {seq_len}"
        )
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


COMMANDS = {
    "demo": demo,
    "presets": presets,
    "train": train,
    "evaluate": evaluate,
}
"""Each subcommand's function, called with the parsed arguments."""
