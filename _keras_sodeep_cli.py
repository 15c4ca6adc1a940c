"""The ``keras-sodeep`` command line: its options, and its entry point.

```
keras-sodeep demo                 # why a rank loss: MSE against SpearmanLoss
keras-sodeep presets              # the pretrained sorters and their fidelity
keras-sodeep train --arch lstm --output DIR   # train a sorter (re-run resumes)
keras-sodeep evaluate sigmoid:0.1 # fidelity of a sorter or ranker
```

The benchmarks run from a source checkout, as scripts:
``python benchmarks/speed.py``, ``python benchmarks/surrogate.py``, ...

This module sits outside the ``keras_sodeep`` package on purpose: importing
anything from the package runs ``keras_sodeep/__init__.py``, which imports
Keras (it must: loading a saved model needs the package's classes
registered), hence TensorFlow, 10 to 30 s on a loaded machine. Here only the
standard library is imported until a subcommand runs, so ``--help`` and
usage errors answer at once. Then TensorFlow is imported with file
descriptor 2 pointed at ``/dev/null`` (its C++ start-up lines - oneDNN, CUDA
drivers, CPU features, absl's "All log messages before
absl::InitializeLog() is called" - are written there before any code of
the command runs, and environment variables do not silence all of them),
and the subcommand runs from `keras_sodeep.cli`.

Errors: a usage error (a bad option value, an option that does not apply)
prints one line ``keras-sodeep COMMAND: error: ...`` and exits with status
2; a refused request (an output folder that holds someone else's files)
one line and status 1. Anything else is a bug and keeps its traceback.
"""

import argparse
import contextlib
import os
import sys

ARCHITECTURES = ("lstm", "cnn", "gru", "histogram")
"""The ``--arch`` choices: ``keras_sodeep.sorters.ARCHITECTURES``' names,
spelled out so that ``--help`` needs no import of the package."""

DEMO_MIN_SAMPLES = 20
"""The fewest ``demo --samples``: a quarter is held out to measure."""


@contextlib.contextmanager
def quiet_stderr():
    """Points file descriptor 2 (C++ writes too) at ``/dev/null``."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly():
    """Imports TensorFlow without its start-up lines; returns the module.

    Later C++ log lines below errors stay off too: ``TF_CPP_MIN_LOG_LEVEL``
    is set to 3 for the process unless it is set already.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow

    return tensorflow


# -- option types --------------------------------------------------------------


def int_at_least(minimum):
    """An argparse type: an int >= ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            expected = (
                "a positive int" if minimum == 1 else f"an int >= {minimum}"
            )
            raise argparse.ArgumentTypeError(
                f"should be {expected}. Received: {text!r}"
            )
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text):
    """An argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"should be a positive number. Received: {text!r}"
        )
    return value


def positive_ints(name, example):
    """An argparse type: comma-separated positive ints."""

    def parse(text):
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not values or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(
                f"{name} should be comma-separated positive ints, e.g. "
                f"{example}. Received: {text!r}"
            )
        return values

    return parse


def lengths(text):
    """``--lengths``: ``None`` (auto), ``()`` (none) or positive ints."""
    if text == "auto":
        return None
    if text == "none":
        return ()
    try:
        return positive_ints("--lengths", "10,100")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            "--lengths should be 'auto', 'none' or comma-separated positive "
            f"ints. Received: {text!r}"
        ) from None


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# -- subcommands ---------------------------------------------------------------


def _add_demo_command(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="why a rank loss: MSE against SpearmanLoss on a tiny model",
        description=(
            "Trains a small regression model on a target whose order is "
            "all that is reliable (y = exp(3 z) with 5 %% outliers), once "
            "with MSE and once with SpearmanLoss(), and prints the held-out "
            "Spearman correlation of each before and after training."
        ),
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument(
        "--samples",
        type=int_at_least(DEMO_MIN_SAMPLES),
        default=2048,
        help=f"at least {DEMO_MIN_SAMPLES}; a quarter is held out "
        "(default: 2048)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--verbose", action="store_true")


def _add_presets_command(subparsers):
    parser = subparsers.add_parser(
        "presets", help="list the pretrained sorters and their fidelity"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the metadata as JSON"
    )


def _add_train_command(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a sorter on synthetic lists (re-run to resume)",
        description=(
            "Trains a sorter on synthetic lists and writes a preset folder "
            "to --output, a new or empty folder (it is marked as a run "
            "folder; a non-empty folder that is not one is refused). "
            "Checkpoints go to OUTPUT/backup every --checkpoint-every "
            "steps; running the same command again resumes from the last "
            "one."
        ),
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument("--seq-len", type=positive_int, default=100)
    parser.add_argument(
        "--min-seq-len",
        type=positive_int,
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
        type=positive_float,
        default=None,
        help="the sorter's smooth gradient (Sorter(gradient_temperature=)); "
        "outputs and training are unchanged, it is recorded in the preset",
    )
    parser.add_argument(
        "--units",
        type=positive_int,
        default=None,
        help="width: units per recurrent direction (lstm, gru), filters "
        "(cnn), correction-head units (histogram)",
    )
    parser.add_argument(
        "--num-layers",
        type=positive_int,
        default=None,
        help="depth: recurrent layers (lstm, gru), convolution blocks (cnn)",
    )
    parser.add_argument(
        "--anchors",
        type=positive_ints("--anchors", "16,16,16"),
        default=None,
        help="histogram: anchors of each counting pass, comma-separated "
        "(default 64,256,256,256)",
    )
    parser.add_argument("--steps", type=positive_int, default=10000)
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument(
        "--schedule", choices=("cosine", "constant"), default="cosine"
    )
    parser.add_argument(
        "--output",
        required=True,
        help="the run and preset folder: new, empty, or a run of this "
        "command to resume",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="steps between checkpoints, a divisor of --steps "
        "(default: the largest divisor up to 1000)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--eval-lists",
        type=non_negative_int,
        default=10000,
        help="lists of the final fidelity evaluation (0 skips it)",
    )
    parser.add_argument(
        "--log-lines",
        action="store_true",
        help="one line per epoch instead of a progress bar",
    )


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
    parser.add_argument("--num-lists", type=positive_int, default=10000)
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="seed of the lists (default: the standard evaluation seed)",
    )
    parser.add_argument(
        "--seq-len",
        type=int_at_least(2),
        default=None,
        help="list length (default: the sorter's, else 100)",
    )
    parser.add_argument(
        "--lengths",
        type=lengths,
        default=None,
        help="length sweep: 'auto' (10, 50, 100, 200, 500, 1000; for a "
        "fixed-length sorter those below its length, padded and masked), "
        "'none' or comma-separated ints",
    )
    parser.add_argument(
        "--length-lists",
        type=positive_int,
        default=1000,
        help="lists per length of the sweep",
    )
    parser.add_argument(
        "--held-out-lists",
        type=non_negative_int,
        default=None,
        help="lists per held-out distribution (wide, cauchy, exponential, "
        "clusters, near_ties, cosine); 0 skips them (default: "
        "min(--num-lists, 1000))",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as JSON"
    )


def build_parser():
    """Returns the ``keras-sodeep`` argument parser (standard library only)."""
    parser = ArgumentParser(
        prog="keras-sodeep",
        description="SoDeep learned sorters and rank losses for Keras.",
        epilog="The benchmarks run from a source checkout: "
        "python benchmarks/speed.py --help, python benchmarks/surrogate.py "
        "--help, ...",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    _add_demo_command(subparsers)
    _add_presets_command(subparsers)
    _add_train_command(subparsers)
    _add_evaluate_command(subparsers)
    return parser


def main(argv=None):
    """Runs ``keras-sodeep``; returns 0, or raises ``SystemExit``.

    Args:
        argv: the arguments, ``sys.argv[1:]`` if ``None``.

    Returns:
        0 once the command is done. A usage error (status 2) or a refused
        request (status 1) prints one line to stderr and raises
        ``SystemExit``.
    """
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    from keras_sodeep import cli

    try:
        return cli.COMMANDS[args.command](args)
    except cli.CommandError as error:
        message = " ".join(str(error).split())
        print(f"keras-sodeep {args.command}: error: {message}", file=sys.stderr)
        raise SystemExit(error.exit_status) from None


if __name__ == "__main__":
    sys.exit(main())
