"""Memory and time of the default losses on one list of a million items.

Each case runs in a process of its own: the loss with its default
constructor, on one list of ``--size`` scores (normal) against labels
(normal for ``SpearmanLoss``, 1 % relevant items for the others), one
value and gradient with respect to the scores per step (the labels an
argument of the step, as in ``fit``), three steps. The
table gives the process's peak resident memory (the interpreter with
Keras and its backend included: its memory before the first step is the
"base" column), the first step (tracing and compiling included) and the
fastest of the two steps after it. A case whose memory passes
``--limit-mb`` is stopped and reported as such.

Modes: ``tf-function`` (TensorFlow, the step in a ``tf.function``, as
``fit`` runs it), ``tf-eager`` (TensorFlow, a ``GradientTape`` without
``tf.function``: custom loops, ``run_eagerly=True``), ``jax-jit``
(``jax.jit`` of ``jax.value_and_grad``), ``torch`` (PyTorch, eager).

```
python benchmarks/long_lists.py                       # every case, 10^6
python benchmarks/long_lists.py --modes tf-eager --losses NDCGLoss
python benchmarks/long_lists.py --size 100000 --output long_lists.md
```

Losses over embeddings (``SupAPLoss``, ``ROADMAPLoss``,
``RankedListLoss``, ``RecallAtKSurrogateLoss``) compare every pair of a
batch, ``O(n^2)`` by definition, and are not cases here.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import _common

LOSSES = (
    "SpearmanLoss",
    "MeanAveragePrecisionLoss",
    "NDCGLoss",
    "MeanReciprocalRankLoss",
    "RecallAtKLoss",
)
MODES = {
    "tf-function": "tensorflow",
    "tf-eager": "tensorflow",
    "jax-jit": "jax",
    "torch": "torch",
}
# Losses whose default ranks each row (axis=-1): one list is one row.
ROW_LOSSES = ("NDCGLoss", "MeanReciprocalRankLoss", "RecallAtKLoss")


def _child(mode, name, size):
    """One case, in this process; prints its figures as JSON."""
    import resource

    import keras
    import numpy as np

    from keras_sodeep import losses

    rng = np.random.default_rng(0)
    shape = (1, size) if name in ROW_LOSSES else (size, 1)
    if name == "SpearmanLoss":
        y = rng.normal(size=shape).astype("float32")
    else:
        y = (rng.random(shape) < 0.01).astype("float32")
    s = rng.normal(size=shape).astype("float32")
    loss = getattr(losses, name)()
    if mode.startswith("tf"):
        import tensorflow as tf

        x = tf.Variable(s)
        labels = tf.constant(y)

        def tf_step(labels):
            with tf.GradientTape() as tape:
                value = loss(labels, x)
            return value, tape.gradient(value, x)

        if mode == "tf-function":
            tf_step = tf.function(tf_step)

        def step():
            return tf_step(labels)
    elif mode == "jax-jit":
        import jax

        value_and_grad = jax.jit(
            jax.value_and_grad(lambda x, labels: loss(labels, x))
        )

        def step():
            return value_and_grad(s, y)
    else:
        import torch

        def step():
            x = torch.tensor(s, requires_grad=True)
            value = loss(torch.tensor(y), x)
            value.backward()
            return value, x.grad

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(3):
        start = time.perf_counter()
        value, gradient = step()
        gradient = keras.ops.convert_to_numpy(gradient)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "base_mb": round(base),
                "peak_mb": round(peak),
                "first_s": round(times[0], 2),
                "step_s": round(min(times[1:]), 2),
                "finite": bool(
                    np.isfinite(keras.ops.convert_to_numpy(value))
                    and np.isfinite(gradient).all()
                ),
            }
        )
    )


def _resident_mb(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_case(mode, name, size, limit_mb):
    """Runs one case in a child process; returns its figures (a dict)."""
    env = dict(os.environ, KERAS_BACKEND=MODES[mode], TF_CPP_MIN_LOG_LEVEL="2")
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, name, str(size)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = False
    while child.poll() is None:
        if _resident_mb(child.pid) > limit_mb:
            child.kill()
            stopped = True
        time.sleep(0.1)
    out, err = child.communicate()
    if stopped:
        return {"stopped": True}
    if child.returncode != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": last}
    return json.loads(out.strip().splitlines()[-1])


def table(rows, limit_mb):
    lines = [
        "| mode | loss | peak (MB) | base (MB) | first step (s) | step (s) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, name, r in rows:
        if r.get("stopped"):
            figures = f"over {limit_mb:g} (stopped) | | |"
        elif "error" in r:
            figures = f"error: {r['error']} | | |"
        else:
            finite = "" if r["finite"] else " (not finite)"
            figures = (
                f"{r['peak_mb']}{finite} | {r['base_mb']} | {r['first_s']} "
                f"| {r['step_s']}"
            )
        lines.append(f"| {mode} | `{name}()` | {figures} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Peak memory and time of the default losses on one "
        "long list, one process per case."
    )
    parser.add_argument(
        "--size",
        type=_common.positive(int),
        default=1_000_000,
        help="items in the list (default: 1000000)",
    )
    parser.add_argument(
        "--losses",
        type=_common.comma_list(str, "losses"),
        default=LOSSES,
        help="comma-separated loss names (default: %(default)s)",
    )
    parser.add_argument(
        "--modes",
        type=_common.comma_list(str, "modes"),
        default=tuple(MODES),
        help="comma-separated modes, of " + ", ".join(MODES),
    )
    parser.add_argument(
        "--limit-mb",
        type=_common.positive(float),
        default=8000.0,
        help="stop a case past this resident memory (default: 8000)",
    )
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args(argv)
    for mode in args.modes:
        if mode not in MODES:
            parser.error(
                f"--modes should name modes of {', '.join(MODES)}. "
                f"Received: {mode!r}"
            )
    for name in args.losses:
        if name not in LOSSES:
            parser.error(
                f"--losses should name losses of {', '.join(LOSSES)}. "
                f"Received: {name!r}"
            )
    start = time.time()
    machine = _common.machine_description()
    rows = []
    cases = [(m, n) for m in args.modes for n in args.losses]
    for i, (mode, name) in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {mode} {name}", file=sys.stderr, flush=True)
        rows.append(
            (mode, name, run_case(mode, name, args.size, args.limit_mb))
        )
    end_load = _common.machine_description()["load_average"]
    report = "\n".join(
        [
            table(rows, args.limit_mb),
            "",
            f"One list of {args.size:,} items; {machine['system']}, "
            f"{machine['usable_cpus']} CPUs, load average "
            f"{machine['load_average'][0]} / {end_load[0]} (start / end), "
            f"{(time.time() - start) / 60:.1f} min; TensorFlow "
            f"{machine['tensorflow']}, Keras {machine['keras']}.",
            "",
            "Command: `python benchmarks/long_lists.py "
            + " ".join(argv if argv is not None else sys.argv[1:])
            + "`",
        ]
    )
    print(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
