"""Training efficiency: lists per second and L1 against wall time (issue 14).

Each configuration trains an untrained fixed-length sorter of 100 items
with `keras_sodeep.training.train_sorter` (Adam, ``--lr``, MAE on the exact
normalized ranks of the ``"paper"`` mix, seed ``--seed``) for ``--steps``
steps, in a fresh process per configuration (Keras picks its backend at
import time: the script runs itself with ``KERAS_BACKEND`` set and
``--worker``). A callback measures, during ``fit``:

```
compile (s)   = wall time of the first step (tracing, compilation, the
                first batch)
lists/s       = (steps - 1) * batch / (training wall time - compile)
L1 (t)        = evaluate_ranker(sorter, num_lists=eval_lists, lengths=(),
                held_out_lists=0)["l1"] every `steps / evals` steps, on the
                standard evaluation lists of 100 items; t is the training
                wall time at that point: compile included, every
                evaluation (and the one before the first step) excluded
```

The configurations, one setting changed at a time from a base (an LSTM
or a CNN sorter, TensorFlow, batch 128, ``jit_compile=True``, cosine
schedule, lists of 100), are named by the architecture followed by the
settings that differ, joined by ``-``:

- ``lstm`` / ``cnn``: ``LSTMSorter(100)`` (128 units, 2 layers) /
  ``CNNSorter(100)``;
- ``jax``: the JAX backend (``tf``: TensorFlow);
- ``b64``, ``b256``, ``bN``: the batch size;
- ``nojit``: ``jit_compile=False`` (TensorFlow: a ``tf.function`` without
  XLA, what ``"auto"`` gives on a CPU; JAX: no ``jax.jit``);
- ``constant``: a constant learning rate (``cosine``: cosine decay to 0
  over ``--steps``);
- ``padded``: lists of 10 to 100 items, padded to 100 and masked (as
  ``keras-sodeep train --min-seq-len 10 --padded``; ``fixed``: 100);
- ``paper``: the paper's input features and sigmoid head
  (``spread_inputs=False``), a sorter that learns from scratch (``spread``,
  the default: the network corrects the estimate ``1 - q``, its head
  starting at zero, so the untrained sorter is already close).

Time to the target counts the evaluations after the first step only: a
default sorter's L1 before training (the ``1 - q`` estimate) is shown in
its own column.

The report (``benchmarks/results/training_efficiency.md``) has a table
with a row per configuration, the L1 at each evaluation, the fastest path
to an L1 target (``--target-l1``; default the median of the final L1s) as
measured in the run, the machine and the command; the plot
(``benchmarks/results/training_efficiency.png``, when matplotlib is
installed) draws L1 against wall time and the lists per second.

```
python benchmarks/training_efficiency.py          # the study: 14 configs
python benchmarks/training_efficiency.py --quick  # smoke run: 2 configs,
                                                  # 4 steps, 50 eval lists
python benchmarks/training_efficiency.py --configs lstm,lstm-jax,cnn-b64
python benchmarks/training_efficiency.py --steps 1000 --seconds 120
```

``--seconds`` caps each configuration's training wall time: the run
stops at the first evaluation past it (after one more step), before the
end of its cosine schedule, which the table shows as "k of N" steps.
"""

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

from _keras_sodeep_cli import import_tensorflow_quietly

tf = import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_description  # noqa: E402

from keras_sodeep import sorters  # noqa: E402
from keras_sodeep.training import evaluate_ranker, train_sorter  # noqa: E402

tf.get_logger().setLevel("ERROR")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

SEQ_LEN = 100
"""The sorters' list length."""

MIN_SEQ_LEN = 10
"""The shortest list of the ``padded`` configurations."""

BASE = {
    "arch": "lstm",
    "backend": "tensorflow",
    "batch": 128,
    "jit": True,
    "schedule": "cosine",
    "lengths": "fixed",
    "inputs": "spread",
}
"""The base configuration; a name changes some of its settings."""

ARCHITECTURES = ("lstm", "cnn")
BACKENDS = {"tf": "tensorflow", "jax": "jax"}
VARIANTS = ("", "-jax", "-b64", "-b256", "-nojit", "-constant", "-padded")
CONFIGS = tuple(a + v for a in ARCHITECTURES for v in VARIANTS)
"""The configurations of a default run."""

STEPS = 250
EVALS = 6
EVAL_LISTS = 1000
LEARNING_RATE = 1e-3

QUICK = {"configs": ("cnn", "cnn-jax"), "steps": 4, "evals": 2}
QUICK_EVAL_LISTS = 50
"""Settings of ``--quick``."""


# -- configurations ------------------------------------------------------------


def parse_config(name):
    """The settings of a configuration name (see the module docstring).

    Args:
        name: str, an architecture then settings joined by ``-``, e.g.
            ``"lstm-jax-b64"``.

    Returns:
        A dict with the keys of `BASE` and ``name``, the canonical name
        (the settings that differ from `BASE`, in a fixed order).
    """
    arch, *tokens = name.strip().lower().split("-")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"A configuration starts with one of {ARCHITECTURES}. "
            f"Received: {name!r}"
        )
    config = dict(BASE, arch=arch)
    for token in tokens:
        if token in BACKENDS:
            config["backend"] = BACKENDS[token]
        elif token[:1] == "b" and token[1:].isdigit() and int(token[1:]) > 0:
            config["batch"] = int(token[1:])
        elif token in ("jit", "nojit"):
            config["jit"] = token == "jit"
        elif token in ("cosine", "constant"):
            config["schedule"] = token
        elif token in ("fixed", "padded"):
            config["lengths"] = token
        elif token in ("spread", "paper"):
            config["inputs"] = token
        else:
            raise ValueError(
                f"Unknown setting {token!r} in configuration {name!r}: use "
                "tf, jax, b<batch>, jit, nojit, cosine, constant, fixed, "
                "padded, spread, paper."
            )
    parts = [arch]
    if config["backend"] != BASE["backend"]:
        parts.append("jax")
    if config["batch"] != BASE["batch"]:
        parts.append(f"b{config['batch']}")
    if config["jit"] != BASE["jit"]:
        parts.append("nojit")
    if config["schedule"] != BASE["schedule"]:
        parts.append(config["schedule"])
    if config["lengths"] != BASE["lengths"]:
        parts.append(config["lengths"])
    if config["inputs"] != BASE["inputs"]:
        parts.append(config["inputs"])
    config["name"] = "-".join(parts)
    return config


def _seq_len(config):
    if config["lengths"] == "padded":
        return (MIN_SEQ_LEN, SEQ_LEN)
    return SEQ_LEN


# -- the worker: one configuration in this process -----------------------------


def _wait(model):
    """The model once its last step has run (JAX dispatches ahead).

    On JAX, a callback's ``self.model`` attaches the training state to the
    variables; reading one waits for the step that computed it.
    """
    keras.ops.convert_to_numpy(model.trainable_weights[-1])
    return model


class FidelityTrace(keras.callbacks.Callback):
    """Times training and measures the L1 every ``every`` steps.

    Evaluations run in ``on_train_batch_begin`` (before the step of that
    index) and in ``on_train_end``, and their time is left out of the wall
    time. The callback defines no ``on_train_batch_end``, so that Keras
    keeps dispatching steps asynchronously; it waits for the steps only at
    the evaluations and after the first step.

    Args:
        every: int, steps between evaluations.
        eval_lists: int, the lists of each evaluation.
        seconds: float or ``None``, stop at the first evaluation past this
            training wall time (after one more step, which Keras runs
            before it stops).
        log: callable taking a str, or ``None``.
    """

    def __init__(self, every, eval_lists, seconds=None, log=None):
        super().__init__()
        self.every = every
        self.eval_lists = eval_lists
        self.seconds = seconds
        self.log = log

    def wall_time(self):
        """Training wall time so far, evaluations left out."""
        return time.perf_counter() - self.start - self.eval_s

    def _evaluate(self, model, wall):
        begin = time.perf_counter()
        l1 = evaluate_ranker(
            model, num_lists=self.eval_lists, lengths=(), held_out_lists=0
        )["l1"]
        self.eval_s += time.perf_counter() - begin
        self.trace.append(
            {"wall_s": wall, "steps": self.steps, "l1": float(l1)}
        )
        if self.log:
            self.log(f"step {self.steps}: L1 {l1:.4f} at {wall:.1f} s")

    def on_train_begin(self, logs=None):
        self.trace, self.steps, self.eval_s = [], 0, 0.0
        self.compile_s, self.stopped = None, False
        self._evaluate(self.model, 0.0)
        self.eval_s = 0.0
        self.start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps == 1:
            _wait(self.model)
            self.compile_s = self.wall_time()
        if self.steps and self.steps % self.every == 0:
            model = _wait(self.model)
            wall = self.wall_time()
            if self.seconds is not None and wall >= self.seconds:
                model.stop_training = True  # after this step
                self.stopped = True
            else:
                self._evaluate(model, wall)
        self.steps += 1

    def on_train_end(self, logs=None):
        model = _wait(self.model)
        self.train_s = self.wall_time()
        if self.compile_s is None:  # a single step
            self.compile_s = self.train_s
        if self.trace[-1]["steps"] != self.steps:
            self._evaluate(model, self.train_s)


def worker(name, steps, evals, eval_lists, seconds, seed, learning_rate):
    """Trains one configuration in this process.

    Args:
        name: str, a configuration name (`parse_config`).
        steps, evals, eval_lists, seconds, seed, learning_rate: the
            settings of the run (see ``main``).

    Returns:
        A dict: ``config``, ``compile_s``, ``lists_per_s`` (``None`` after a
        single step), ``steps`` run, ``steps_planned``, ``train_s``
        (wall time, evaluations left out), ``eval_s``, ``stopped`` (by
        ``seconds``), ``trace`` (``wall_s``, ``steps``, ``l1`` of each
        evaluation), ``l1`` (the last) and ``versions``.
    """
    config = parse_config(name)
    if keras.backend.backend() != config["backend"]:
        raise RuntimeError(
            f"{config['name']} runs on {config['backend']}; this process "
            f"has the {keras.backend.backend()} backend (KERAS_BACKEND)."
        )
    keras.utils.set_random_seed(seed)
    sorter = sorters.build_sorter(
        config["arch"], SEQ_LEN, spread_inputs=config["inputs"] == "spread"
    )
    every = max(1, math.ceil(steps / evals))
    trace = FidelityTrace(
        every,
        eval_lists,
        seconds,
        log=lambda line: print(f"progress: {line}", flush=True),
    )
    train_sorter(
        sorter,
        seq_len=_seq_len(config),
        steps=steps,
        batch_size=config["batch"],
        learning_rate=learning_rate,
        schedule=config["schedule"],
        seed=seed,
        eval_lists=0,
        output_dir=None,
        verbose=0,
        jit_compile=config["jit"],
        callbacks=[trace],
    )
    run = trace.steps - 1
    timed = trace.train_s - trace.compile_s
    versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
    if config["backend"] == "jax":
        import jax

        versions["jax"] = jax.__version__
    return {
        "config": config,
        "compile_s": trace.compile_s,
        "lists_per_s": run * config["batch"] / timed if run else None,
        "steps": trace.steps,
        "steps_planned": steps,
        "train_s": trace.train_s,
        "eval_s": trace.eval_s,
        "stopped": trace.stopped,
        "trace": trace.trace,
        "l1": trace.trace[-1]["l1"],
        "every": every,
        "versions": versions,
    }


def run_config(
    name, steps, evals, eval_lists, seconds, seed, learning_rate, log
):
    """Runs `worker` in a fresh process on the configuration's backend."""
    config = parse_config(name)
    env = dict(
        os.environ, KERAS_BACKEND=config["backend"], TF_CPP_MIN_LOG_LEVEL="3"
    )
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        config["name"],
        "--steps",
        str(steps),
        "--evals",
        str(evals),
        "--eval-lists",
        str(eval_lists),
        "--seed",
        str(seed),
        "--lr",
        repr(learning_rate),
    ]
    if seconds is not None:
        command += ["--seconds", repr(seconds)]
    result = None
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        for line in process.stdout:
            if line.startswith("progress: ") and log:
                log(f"  {config['name']}: {line[len('progress: ') :].strip()}")
            elif line.startswith("result: "):
                result = json.loads(line[len("result: ") :])
        process.wait()
        if process.returncode != 0 or result is None:
            stderr.seek(0)
            raise RuntimeError(
                f"{config['name']} failed (exit {process.returncode}):\n"
                + stderr.read()[-3000:]
            )
    return result


# -- the report ----------------------------------------------------------------


def time_to(record, target):
    """The first evaluation after a step at or below ``target``.

    Args:
        record: a record of `worker`.
        target: float, the L1.

    Returns:
        ``(wall_s, steps)``, or ``None`` if no evaluation after the first
        step reached it (the one before training does not count).
    """
    for point in record["trace"]:
        if point["steps"] > 0 and point["l1"] <= target:
            return point["wall_s"], point["steps"]
    return None


def default_target(records):
    """The median of the final L1s."""
    return float(np.median([r["l1"] for r in records]))


def _steps_cell(r):
    if r["steps"] == r["steps_planned"]:
        return str(r["steps"])
    return f"{r['steps']} of {r['steps_planned']}"


def efficiency_table(records, target):
    """A row per configuration: settings, speed, final L1, time to target."""
    lines = [
        "| configuration | architecture | backend | batch | jit_compile "
        "| schedule | lengths | steps | compile (s) | lists/s "
        "| L1 before training | L1 at the end | wall time (s) "
        f"| time to L1 ≤ {target:.4f} (s) |",
        "|" + "---|" * 14,
    ]
    for r in records:
        c = r["config"]
        reached = time_to(r, target)
        speed = r["lists_per_s"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{c['name']}`",
                    c["arch"].upper()
                    + (", paper inputs" if c["inputs"] == "paper" else ""),
                    "TensorFlow" if c["backend"] == "tensorflow" else "JAX",
                    str(c["batch"]),
                    str(c["jit"]),
                    c["schedule"],
                    "10-100 padded" if c["lengths"] == "padded" else "100",
                    _steps_cell(r),
                    f"{r['compile_s']:.1f}",
                    "" if speed is None else f"{speed:.0f}",
                    f"{r['trace'][0]['l1']:.4f}",
                    f"{r['l1']:.4f}",
                    f"{r['train_s']:.1f}",
                    "not reached"
                    if reached is None
                    else f"{reached[0]:.1f} (step {reached[1]})",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def trace_table(records):
    """The L1 at each evaluation: a column per step, ``L1 (wall s)``."""
    steps = sorted({p["steps"] for r in records for p in r["trace"]})
    lines = [
        "| configuration | " + " | ".join(f"step {s}" for s in steps) + " |",
        "|" + "---|" * (len(steps) + 1),
    ]
    for r in records:
        at = {p["steps"]: p for p in r["trace"]}
        cells = [
            f"{at[s]['l1']:.4f} ({at[s]['wall_s']:.0f} s)" if s in at else ""
            for s in steps
        ]
        lines.append(f"| `{r['config']['name']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fastest_path(records, target):
    """Sentences: who reached ``target`` first, and against the start.

    Args:
        records: records of `worker`.
        target: float, the L1 target.

    Returns:
        A str: the configurations that reached ``target`` first (by
        `time_to`), the lowest final L1, and the lowest L1 measured before
        training against the lowest measured after a step.
    """
    reached = sorted(
        (hit[0], hit[1], r["config"]["name"])
        for r in records
        if (hit := time_to(r, target)) is not None
    )
    best = min(records, key=lambda r: r["l1"])
    lowest = (
        f"The lowest final L1 is `{best['config']['name']}`'s, "
        f"{best['l1']:.4f} after {best['steps']} steps and "
        f"{best['train_s']:.1f} s."
    )
    start = min(records, key=lambda r: r["trace"][0]["l1"])
    start_l1 = start["trace"][0]["l1"]
    trained = min(
        (p["l1"], p["steps"], r["config"]["name"])
        for r in records
        for p in r["trace"]
        if p["steps"] > 0
    )
    lowest += (
        f" Before training, the lowest L1 is `{start['config']['name']}`'s, "
        f"{start_l1:.4f}; the lowest after training started is "
        f"`{trained[2]}`'s, {trained[0]:.4f} at step {trained[1]}"
        + (
            ", no lower than before training."
            if trained[0] >= start_l1
            else "."
        )
    )
    if not reached:
        return f"No configuration reached L1 ≤ {target:.4f}. " + lowest
    wall, steps, name = reached[0]
    text = (
        f"Fastest path to L1 ≤ {target:.4f} in this run: `{name}`, at "
        f"{wall:.1f} s of training wall time (step {steps}, compile "
        "included)"
    )
    if len(reached) > 1:
        text += "; then " + ", ".join(
            f"`{n}` ({w:.1f} s)" for w, _, n in reached[1:3]
        )
    return text + ". " + lowest


def plot(records, path, target):
    """L1 against wall time and lists/s; returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]}
    )
    colors = plt.get_cmap("tab20")
    for i, r in enumerate(records):
        trace = r["trace"]
        style = "-" if r["config"]["arch"] == "lstm" else "--"
        left.plot(
            [p["wall_s"] for p in trace],
            [p["l1"] for p in trace],
            style,
            marker="o",
            markersize=3,
            color=colors(i % 20),
            label=r["config"]["name"],
        )
    left.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    left.set_yscale("log")
    left.set_xlabel("training wall time (s), compile included")
    left.set_ylabel("L1 (evaluation lists of 100)")
    left.set_title("L1 against wall time")
    left.legend(fontsize=7, ncol=2)
    names = [r["config"]["name"] for r in records]
    speeds = [r["lists_per_s"] or 0.0 for r in records]
    right.barh(
        names, speeds, color=[colors(i % 20) for i in range(len(records))]
    )
    right.invert_yaxis()
    right.set_xlabel("lists per second (first step left out)")
    right.set_title("Throughput")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _machine_line(machine, versions, minutes):
    jax_version = versions.get("jax")
    return (
        f"Machine: {machine.get('cpu')}, {machine.get('usable_cpus')} of "
        f"{machine.get('cpus')} CPUs, {machine.get('memory_gib')} GiB; "
        f"load average {machine.get('load_average')} at the start, "
        f"{machine.get('load_average_end')} at the end; "
        f"{machine.get('system')}, Python {machine.get('python')}, "
        f"TensorFlow {versions.get('tensorflow')}, Keras "
        f"{versions.get('keras')}"
        + (f", JAX {jax_version}" if jax_version else "")
        + f". Total {minutes:.1f} min."
    )


def report(records, settings, command, machine, minutes, plot_path):
    """The Markdown report of a run."""
    target = settings["target"]
    versions = {}
    for r in records:
        versions.update(r["versions"])
    if plot_path:
        figure = (
            f"![L1 against wall time]({os.path.basename(plot_path)})"
            f"\n\nPlot: `{os.path.basename(plot_path)}` beside this report."
        )
    else:
        figure = "No plot: matplotlib is not installed."
    stop = (
        f", stopped at the first evaluation past {settings['seconds']:g} s "
        "of training"
        if settings["seconds"] is not None
        else ""
    )
    return "\n".join(
        [
            "## Training efficiency (issue 14)",
            "",
            "Each configuration trains an untrained sorter of 100 items "
            "(default `spread_inputs=True`: the network corrects the "
            "estimate 1 − q, its head starting at zero; `paper`: the "
            "paper's inputs, from scratch) "
            "with `train_sorter` (Adam, learning rate "
            f'{settings["lr"]:g}, MAE, the `"paper"` mix, seed '
            f"{settings['seed']}) for {settings['steps']} steps{stop}, in "
            "a fresh process. Every "
            f"{records[0]['every'] if records else '-'} steps (and before "
            "the first) `evaluate_ranker` measures the L1 on "
            f"{settings['eval_lists']} evaluation lists of 100 items. Base: "
            "TensorFlow, batch 128, `jit_compile=True`, cosine schedule, "
            "lists of 100; a name lists the settings that differ.",
            "",
            efficiency_table(records, target),
            "",
            fastest_path(records, target),
            "",
            "Compile: the wall time of the first step (tracing, "
            "compilation, the first batch). L1 before training: the "
            "evaluation before the first step. Lists/s: the steps after the "
            "first times the batch, over their wall time (`padded`: lists "
            "of 10 to 100 items, padded to 100). Wall time: training only, "
            "compile included, evaluations left out. Time to L1 ≤ target: "
            "the wall time of the first evaluation after a step at or below "
            "it "
            + (
                "(the target given by `--target-l1`)"
                if settings["target_given"]
                else "(target: the median of the final L1s)"
            )
            + ". One run per configuration, one seed.",
            "",
            "### L1 at each evaluation (training wall time)",
            "",
            trace_table(records),
            "",
            figure,
            "",
            f"Command: `{command}`",
            "",
            _machine_line(machine, versions, minutes),
            "",
        ]
    )


# -- the command ---------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        default=None,
        help="comma-separated configuration names (default: "
        + ",".join(CONFIGS)
        + ")",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"steps per configuration, the cosine horizon (default {STEPS})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="cap on each configuration's training wall time",
    )
    parser.add_argument(
        "--evals",
        type=int,
        default=None,
        help=f"evaluations per run after step 0 (default {EVALS})",
    )
    parser.add_argument(
        "--eval-lists",
        type=int,
        default=None,
        help=f"lists per evaluation (default {EVAL_LISTS})",
    )
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-l1",
        type=float,
        default=None,
        help="L1 of the fastest path (default: the median final L1)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK['steps']} steps, {QUICK_EVAL_LISTS} "
        f"evaluation lists, configurations {','.join(QUICK['configs'])}",
    )
    parser.add_argument(
        "--output", default=os.path.join(RESULTS, "training_efficiency.md")
    )
    parser.add_argument(
        "--plot", default=None, help="PNG path (default: beside --output)"
    )
    parser.add_argument("--json", default=None, help="path for the records")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    """Runs the study (or, with ``--worker``, one configuration)."""
    args = _parser().parse_args(argv)
    defaults = QUICK if args.quick else {}
    steps = args.steps or defaults.get("steps", STEPS)
    evals = args.evals or defaults.get("evals", EVALS)
    eval_lists = args.eval_lists or (
        QUICK_EVAL_LISTS if args.quick else EVAL_LISTS
    )
    if args.worker:
        result = worker(
            args.worker,
            steps,
            evals,
            eval_lists,
            args.seconds,
            args.seed,
            args.lr,
        )
        print("result: " + json.dumps(result), flush=True)
        return 0
    names = (
        args.configs.split(",")
        if args.configs
        else defaults.get("configs", CONFIGS)
    )
    names = [parse_config(n)["name"] for n in names]  # fails early
    machine = machine_description()
    start = time.time()
    records = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)
        r = run_config(
            name,
            steps,
            evals,
            eval_lists,
            args.seconds,
            args.seed,
            args.lr,
            log=lambda line: print(line, flush=True),
        )
        speed = r["lists_per_s"]
        print(
            f"[{i}/{len(names)}] {name}: compile {r['compile_s']:.1f} s, "
            + ("" if speed is None else f"{speed:.0f} lists/s, ")
            + f"L1 {r['l1']:.4f} after {r['steps']} steps, "
            f"{r['train_s']:.1f} s",
            flush=True,
        )
        records.append(r)
    machine["load_average_end"] = machine_description().get("load_average")
    target = (
        args.target_l1
        if args.target_l1 is not None
        else default_target(records)
    )
    plot_path = args.plot or os.path.splitext(args.output)[0] + ".png"
    plot_path = plot_path if plot(records, plot_path, target) else None
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/training_efficiency.py", *argv])
    text = report(
        records,
        {
            "steps": steps,
            "seconds": args.seconds,
            "eval_lists": eval_lists,
            "lr": args.lr,
            "seed": args.seed,
            "target": target,
            "target_given": args.target_l1 is not None,
        },
        command,
        machine,
        (time.time() - start) / 60,
        plot_path,
    )
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"machine": machine, "target_l1": target, "records": records},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
