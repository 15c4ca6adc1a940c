"""The `keras-sodeep` command line.

Each subcommand is a small function that parses its arguments and calls the
library; the work itself lives in the module whose idea it is.

```
keras-sodeep demo                 # train a tiny model with a rank metric
keras-sodeep presets              # the pretrained sorters and their fidelity
```
"""

import argparse
import json
import os
import sys


def _demo(args):
    """Trains a small regression model and reports Spearman's rho."""
    import keras
    import numpy as np

    from keras_sodeep.metrics import SpearmanCorrelation

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.samples, 8)).astype("float32")
    w = rng.normal(size=(8,)).astype("float32")
    y = np.tanh(x @ w) + 0.1 * rng.normal(size=args.samples)
    y = y.astype("float32")
    split = args.samples * 3 // 4
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="mse",
        metrics=[SpearmanCorrelation()],
    )
    before = model.evaluate(x[split:], y[split:], verbose=0, return_dict=True)
    model.fit(
        x[:split],
        y[:split],
        batch_size=64,
        epochs=args.epochs,
        verbose=2 if args.verbose else 0,
    )
    after = model.evaluate(x[split:], y[split:], verbose=0, return_dict=True)
    print("keras_sodeep demo: regression on synthetic data, held-out set")
    print(f"  Spearman rho before training: {before['spearman']:.4f}")
    print(f"  Spearman rho after training:  {after['spearman']:.4f}")
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
    from keras_sodeep import pretrained

    info = pretrained.presets()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    if not info:
        print(
            "No pretrained sorter presets are installed: the package's "
            "presets/ folder holds none yet."
        )
        return 0
    print(pretrained.presets_table(info))
    print()
    print(
        f"Cache: {pretrained.cache_dir()} (KERAS_SODEEP_HOME moves it); "
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


def build_parser():
    """Returns the `keras-sodeep` argument parser."""
    parser = argparse.ArgumentParser(
        prog="keras-sodeep",
        description="SoDeep learned sorters and rank losses for Keras.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_demo_command(subparsers)
    _add_presets_command(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `keras-sodeep` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
