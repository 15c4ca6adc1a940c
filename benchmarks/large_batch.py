"""Peak memory and step time of chunked large batches.

One training step on a batch of 4,000 embeddings, ``RankedListLoss``, a
small convolutional embedding network on 16 x 16 x 3 inputs: the ordinary
one-pass ``fit`` step against ``ChunkedEmbeddingModel`` at several chunk
sizes. Each variant runs in a fresh process (TensorFlow's CPU allocator is
invisible to ``tracemalloc``, and a process's peak resident set size only
grows), which reports its peak RSS after building the model and running
one ``predict`` chunk (the baseline) and after the training steps, and the
median time of the steps after the first (which traces the function).
Writes ``benchmarks/results/large_batch.md``.

```
python benchmarks/large_batch.py                       # the README table
python benchmarks/large_batch.py --batch 1000 --steps 2   # a quick look
```

RS@k with a pairwise ranker costs O(B^3) at B = 4,000 (a (B, B, B) tensor
for the sigmoid ranker), so the loss here is the O(B^2) Ranked List Loss:
the comparison is of the network's activations, which chunking removes.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(batch, chunk, steps, channels):
    """One variant in this process; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from keras_sodeep.losses import RankedListLoss
    from keras_sodeep.training import ChunkedEmbeddingModel

    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(channels, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(channels, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(channels, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(128),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 16, 16, 3)).astype("float32")
    y = rng.integers(0, batch // 4, size=batch)
    model = net if chunk == 0 else ChunkedEmbeddingModel(net, chunk)
    model.compile(keras.optimizers.SGD(0.01), loss=RankedListLoss())
    net.predict(x[:250], verbose=0)
    baseline = peak_rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - start)
    try:
        import tensorflow as tf

        info = tf.config.experimental.get_memory_info("CPU:0")
        tf_peak = info["peak"] / 2**20
    except Exception:  # not available for the CPU device
        tf_peak = None
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": peak_rss_mb(),
                "tf_peak_mb": tf_peak,
                "step_s": float(np.median(times[1:] or times)),
                "first_s": times[0],
            }
        )
    )


def run_variant(batch, chunk, steps, channels):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker"]
        + ["--batch", str(batch), "--chunk", str(chunk)]
        + ["--steps", str(steps), "--channels", str(channels)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--chunks", default="0,1000,250")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=0)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument(
        "--output", default=os.path.join(HERE, "results", "large_batch.md")
    )
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch, args.chunk, args.steps, args.channels)
        return 0
    start = time.time()
    rows = []
    for chunk in [int(c) for c in args.chunks.split(",")]:
        result = run_variant(args.batch, chunk, args.steps, args.channels)
        label = "one pass" if chunk == 0 else f"chunked, {chunk} per chunk"
        print(label, result, flush=True)
        rows.append((label, result))
    one = rows[0][1]
    lines = [
        f"| step ({args.batch} embeddings) | TF CPU peak (MB) | vs one pass "
        "| peak RSS (MB) | step time (s) | vs one pass |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        tf_peak, one_peak = r["tf_peak_mb"], one["tf_peak_mb"]
        lines.append(
            f"| {label} | "
            + (
                "n/a | n/a"
                if tf_peak is None
                else f"{tf_peak:.0f} | {tf_peak / one_peak:.2f}x"
            )
            + f" | {r['peak_mb']:.0f} | {r['step_s']:.2f} | "
            f"{r['step_s'] / one['step_s']:.2f}x |"
        )
    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines += [
        "",
        "TF CPU peak: `tf.config.experimental.get_memory_info('CPU:0')` "
        "after the steps (TensorFlow's allocator). Peak RSS: "
        "`resource.getrusage` of a fresh process per variant (includes "
        "the interpreter and libraries, "
        f"~{one['baseline_mb']:.0f} MB before the first step). Step time: "
        f"median of {args.steps - 1} `fit` steps after the first (which "
        f"traces). Conv net 3 x Conv2D({args.channels}) on 16 x 16 x 3 "
        "inputs, "
        "RankedListLoss, SGD. "
        f"Total {(time.time() - start) / 60:.1f} min on "
        f"{platform.machine()}, {os.cpu_count()} CPUs.",
        "",
        "Command: `"
        + f"python benchmarks/large_batch.py {command}".strip()
        + "`",
    ]
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
