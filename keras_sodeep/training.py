"""Training sorters on synthetic lists, and measuring their fidelity.

`train_sorter` fits a sorter to the exact normalized ranks of the lists of
`keras_sodeep.synthetic.synthetic_dataset`, with checkpoints it can resume
from after a crash, and exports the result as a preset folder (see
`keras_sodeep.pretrained`). `evaluate_ranker` measures how close a sorter or
a ranker comes to the exact ranks, with the protocol of the paper's Table 1
(DESIGN §9.1).
"""

import json
import os
import platform
import shutil
import time

import keras
import numpy as np

from keras_sodeep import ranking, sorters
from keras_sodeep.pretrained import METADATA_FILE, pretrained, save_preset
from keras_sodeep.synthetic import (
    EVALUATION_SEED,
    _check_seq_len,
    evaluation_lists,
    synthetic_dataset,
)

ARCHITECTURES = ("lstm", "cnn", "gru", "histogram")
"""Names accepted by `build_sorter` and `train_sorter`."""

LENGTHS = (10, 50, 100, 200, 500, 1000)
"""List lengths at which length-generic rankers are evaluated."""

BACKUP_DIR = "backup"
PROGRESS_FILE = "progress.json"
LOG_FILE = "training_log.csv"
_MAX_CHECKPOINT_EVERY = 1000


# ---------------------------------------------------------------------------
# Fidelity.
# ---------------------------------------------------------------------------


def fidelity_figures(predicted, target):
    """The §9.1 figures of predicted normalized ranks against exact ones.

    For lists of ``n`` items, with ``r_hat = n * predicted`` and
    ``r = n * target``:

    ```
    l1             = mean over lists and items of |r_hat_i - r_i| / n
    spearman       = mean over lists of 1 - 6 sum_i (r_hat_i - r_i)^2
                                                   / (n (n^2 - 1))
    exact_fraction = fraction of lists where every |r_hat_i - r_i| < 1/2
    ```

    ``spearman`` is Spearman's formula with the predicted ranks in place of
    the ranks of the predictions: it equals ``scipy.stats.spearmanr`` of the
    predictions when they are a permutation of ``1..n``, and measures their
    values, not only their order. A list counts as ranked exactly when
    rounding every predicted rank gives its true rank (for a list without
    ties, this implies that the predictions sort the list correctly).

    Args:
        predicted: array-like ``(num_lists, n)``, predicted ``rank / n``.
        target: array-like ``(num_lists, n)``, exact ``rank / n``.

    Returns:
        A dict with float entries ``l1``, ``spearman`` and
        ``exact_fraction``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.training import fidelity_figures
    >>> target = np.array([[1, 2, 3, 4]]) / 4
    >>> figures = fidelity_figures(np.array([[1.2, 2, 3, 3.8]]) / 4, target)
    >>> {k: round(v, 4) for k, v in figures.items()}
    {'l1': 0.025, 'spearman': 0.992, 'exact_fraction': 1.0}
    """
    predicted = np.asarray(predicted, dtype="float64")
    target = np.asarray(target, dtype="float64")
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ValueError(
            "`predicted` and `target` should have the same shape "
            "(num_lists, n). Received: "
            f"predicted.shape={predicted.shape}, target.shape={target.shape}"
        )
    n = predicted.shape[-1]
    if n < 2:
        raise ValueError(f"Lists should have at least 2 items. Received: {n}")
    diff = (predicted - target) * n
    spearman = 1.0 - 6.0 * np.sum(diff**2, axis=-1) / (n * (n * n - 1.0))
    return {
        "l1": float(np.mean(np.abs(diff)) / n),
        "spearman": float(np.mean(spearman)),
        "exact_fraction": float(np.mean(np.all(np.abs(diff) < 0.5, -1))),
    }


def resolve_ranker(spec):
    """Turns a ranker specification into a ranker or a sorter.

    Args:
        spec: a ``keras_sodeep.ranking.Ranker`` or a sorter (returned as
            is); ``"sigmoid"`` or ``"sigmoid:T"`` for
            ``SigmoidRanker(temperature=T)`` (default 0.1, the paper's
            ``lambda = 10``); ``"neuralsort"`` or ``"neuralsort:T"`` for
            ``NeuralSortRanker(temperature=T)`` (default 1.0); ``"exact"``
            for ``ExactRanker()``; ``"untrained:ARCH"`` for an untrained
            sorter of `build_sorter` (``ARCH`` in `ARCHITECTURES`; seed 0,
            length-generic where the architecture allows it, else
            ``seq_len=100``), a baseline for trained ones; otherwise a
            preset folder path or name, loaded with
            `keras_sodeep.pretrained.pretrained`.

    Returns:
        A ``Ranker`` (ranks in ``[1, n]``) or a sorter (a ``keras.Model``
        returning ``rank / n``).
    """
    if isinstance(spec, (ranking.Ranker, keras.Model)):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            "`ranker` should be a Ranker, a sorter, a preset folder or name, "
            "or one of 'sigmoid[:T]', 'neuralsort[:T]', 'exact'. "
            f"Received: ranker={spec!r}"
        )
    text = os.fspath(spec)
    if not os.path.isdir(text):
        name, _, value = text.partition(":")
        factories = {
            "sigmoid": (ranking.SigmoidRanker, 0.1),
            "neuralsort": (ranking.NeuralSortRanker, 1.0),
        }
        if name in factories:
            cls, default = factories[name]
            try:
                temperature = float(value) if value else default
            except ValueError:
                raise ValueError(
                    f"The temperature in '{text}' should be a number. "
                    f"Received: {value!r}"
                ) from None
            return cls(temperature=temperature)
        if text == "exact":
            return ranking.ExactRanker()
        if name == "untrained":
            if value not in ARCHITECTURES:
                raise ValueError(
                    "In 'untrained:ARCH', ARCH should be one of "
                    f"{', '.join(ARCHITECTURES)}. Received: {text!r}"
                )
            keras.utils.set_random_seed(0)
            length = 100 if value in ("cnn", "lstm") else (2, 100)
            return build_sorter(value, seq_len=length)
    return pretrained(text)


def _normalized_predictions(model, is_ranker, scores, batch_size):
    n = scores.shape[-1]
    out = model.predict(scores, batch_size=batch_size, verbose=0)
    out = np.asarray(out, dtype="float64")
    return out / n if is_ranker else out


def evaluate_ranker(
    ranker,
    seq_len=None,
    num_lists=10000,
    seed=EVALUATION_SEED,
    batch_size=250,
    lengths=None,
    length_lists=1000,
):
    """Measures a sorter or a ranker with the paper's Table 1 protocol.

    Draws ``num_lists`` lists of ``seq_len`` items from the ``"paper"`` mix
    with `keras_sodeep.synthetic.evaluation_lists` (the standard split of
    DESIGN §9.1 with the default seed), compares the predicted normalized
    ranks with the exact ones (`fidelity_figures`), and repeats the L1 on
    the same lists mapped by ``x -> 1000 x + 50`` and ``x -> 0.001 x``. A
    ranker's output (ranks in ``[1, n]``) is divided by ``n``; a sorter's
    output is ``rank / n`` already.

    For a length-generic ranker (a ``Ranker``, or a sorter with
    ``seq_len=None``), also the L1 at each length in ``lengths`` on
    ``length_lists`` lists of that length (fewer lists than at
    ``seq_len``, since a pairwise ranker costs O(n^2) per list).

    Args:
        ranker: a sorter, a ``keras_sodeep.ranking.Ranker``, or a
            specification for `resolve_ranker` (a preset folder path or
            name, ``"sigmoid:0.1"``, ...).
        seq_len: int, the list length. Defaults to the sorter's
            ``seq_len``, else 100.
        num_lists: int, the number of lists. Defaults to 10,000.
        seed: int, the seed of the lists. Defaults to
            `keras_sodeep.synthetic.EVALUATION_SEED`.
        batch_size: int, lists per forward pass at length 100; at length
            ``n`` it is scaled by ``100 / n``. Defaults to 250.
        lengths: list of ints, the lengths of the sweep; ``()`` skips it.
            Defaults to ``None``: `LENGTHS` for a length-generic ranker,
            none otherwise.
        length_lists: int, lists per length of the sweep. Defaults to
            1,000.

    Returns:
        A dict: ``l1``, ``spearman``, ``exact_fraction`` (see
        `fidelity_figures`), ``l1_scaled_up`` (``1000 x + 50``),
        ``l1_scaled_down`` (``0.001 x``), and ``l1_by_length``, a dict from
        the length (a str, as in JSON) to the L1, when a sweep ran.

    Example:

    >>> from keras_sodeep.ranking import SigmoidRanker
    >>> from keras_sodeep.training import evaluate_ranker
    >>> figures = evaluate_ranker(SigmoidRanker(0.1), num_lists=20,
    ...                           lengths=())
    >>> sorted(figures)
    ['exact_fraction', 'l1', 'l1_scaled_down', 'l1_scaled_up', 'spearman']
    """
    ranker = resolve_ranker(ranker)
    is_ranker = isinstance(ranker, ranking.Ranker)
    if not is_ranker and not hasattr(ranker, "seq_len"):
        raise TypeError(
            "`ranker` should be a Ranker or a sorter (a keras.Model with a "
            f"`seq_len` attribute). Received: ranker={ranker!r}"
        )
    fixed = None if is_ranker else ranker.seq_len
    if seq_len is None:
        seq_len = fixed or 100
    if fixed is not None and seq_len != fixed:
        raise ValueError(
            f"This sorter ranks lists of length {fixed} only. "
            f"Received: seq_len={seq_len}"
        )
    if lengths is None:
        lengths = LENGTHS if fixed is None else ()
    elif lengths and fixed is not None:
        raise ValueError(
            "`lengths` needs a length-generic ranker; this sorter ranks "
            f"lists of length {fixed} only. Received: lengths={lengths}"
        )
    model = ranker
    if is_ranker:
        inputs = keras.Input((None,))
        model = keras.Model(inputs, ranker(inputs))

    def batch_for(n):
        return max(1, batch_size * 100 // n)

    scores, target = evaluation_lists(num_lists, seq_len, seed)
    figures = {}
    bs = batch_for(seq_len)
    predicted = _normalized_predictions(model, is_ranker, scores, bs)
    figures.update(fidelity_figures(predicted, target))
    for key, scaled in (
        ("l1_scaled_up", scores * 1000.0 + 50.0),
        ("l1_scaled_down", scores * 0.001),
    ):
        predicted = _normalized_predictions(model, is_ranker, scaled, bs)
        figures[key] = float(np.mean(np.abs(predicted - target)))
    if lengths:
        figures["l1_by_length"] = {}
        for n in lengths:
            scores, target = evaluation_lists(length_lists, int(n), seed)
            predicted = _normalized_predictions(
                model, is_ranker, scores, batch_for(n)
            )
            figures["l1_by_length"][str(n)] = float(
                np.mean(np.abs(predicted - target))
            )
    return figures


def fidelity_table(figures, name="ranker", seq_len=100, num_lists=None):
    """Formats `evaluate_ranker` figures as Markdown tables.

    Args:
        figures: the dict returned by `evaluate_ranker`.
        name: str, the label of the row. Defaults to ``"ranker"``.
        seq_len: int, the list length of the main figures. Defaults to 100.
        num_lists: int or ``None``, the number of lists, shown if given.

    Returns:
        A str: one table of the main figures and, when the figures hold a
        length sweep, one table of the L1 by length.

    Example:

    >>> from keras_sodeep.training import fidelity_table
    >>> print(fidelity_table({"l1": 0.035, "spearman": 0.99,
    ...                       "exact_fraction": 0.0, "l1_scaled_up": 0.0,
    ...                       "l1_scaled_down": 0.25}, "sigmoid:0.1"))
    | ranker | n | L1 | Spearman rho | exact lists | L1 (1000x+50) | ...
    |---|---|---|---|---|---|---|
    | sigmoid:0.1 | 100 | 0.0350 | 0.9900 | 0.00% | 0.0000 | 0.2500 |
    """
    header = ["ranker", "n"]
    row = [name, str(seq_len)]
    if num_lists is not None:
        header.append("lists")
        row.append(str(num_lists))
    header += [
        "L1",
        "Spearman rho",
        "exact lists",
        "L1 (1000x+50)",
        "L1 (0.001x)",
    ]
    row += [
        f"{figures['l1']:.4f}",
        f"{figures['spearman']:.4f}",
        f"{100 * figures['exact_fraction']:.2f}%",
        f"{figures['l1_scaled_up']:.4f}",
        f"{figures['l1_scaled_down']:.4f}",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| " + " | ".join(row) + " |",
    ]
    by_length = figures.get("l1_by_length")
    if by_length:
        lines += ["", "| n | L1 |", "|---|---|"]
        lines += [f"| {n} | {value:.4f} |" for n, value in by_length.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------


def build_sorter(architecture, seq_len=100, units=None, num_layers=None):
    """Builds an untrained sorter of a named architecture.

    Args:
        architecture: ``"lstm"`` (`keras_sodeep.sorters.LSTMSorter`),
            ``"cnn"`` (``CNNSorter``), ``"gru"`` (``GRUSorter``) or
            ``"histogram"`` (``HistogramSorter``, length-generic).
        seq_len: int, or a ``(min, max)`` range of lengths, which asks for
            a length-generic sorter (``LSTMSorter(seq_len=None)`` or a
            ``GRUSorter``; a ``CNNSorter`` is fixed-length). A ``GRUSorter``
            is always length-generic. Defaults to 100.
        units: int or ``None``, units per recurrent direction (LSTM, GRU),
            filters per block (CNN) or width of the correction head
            (histogram). Defaults to the sorter's default.
        num_layers: int or ``None``, recurrent layers (LSTM, GRU) or
            convolution blocks (CNN). Defaults to the sorter's default.

    Returns:
        A built sorter.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"`architecture` should be one of {', '.join(ARCHITECTURES)}. "
            f"Received: architecture={architecture!r}"
        )
    min_len, max_len = _check_seq_len(seq_len)
    generic = min_len != max_len
    kwargs = {}
    if architecture == "histogram":
        if num_layers is not None:
            raise ValueError(
                "A histogram sorter has no `num_layers`. "
                f"Received: num_layers={num_layers!r}"
            )
        if units is not None:
            kwargs["hidden_units"] = units
        sorter = sorters.HistogramSorter(**kwargs)
    elif architecture == "cnn":
        if generic:
            raise ValueError(
                "A CNN sorter ranks lists of one length: `seq_len` should be "
                f"an int. Received: seq_len={seq_len!r}"
            )
        if units is not None:
            kwargs["filters"] = units
        if num_layers is not None:
            kwargs["num_blocks"] = num_layers
        sorter = sorters.CNNSorter(seq_len=max_len, **kwargs)
    else:
        if units is not None:
            kwargs["units"] = units
        if num_layers is not None:
            kwargs["num_layers"] = num_layers
        if architecture == "lstm":
            length = None if generic else max_len
            sorter = sorters.LSTMSorter(seq_len=length, **kwargs)
        else:
            sorter = sorters.GRUSorter(**kwargs)
    sorter(np.zeros((1, max_len), dtype="float32"))
    return sorter


def hardware_description():
    """A one-line description of the machine: OS, CPU, devices."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{platform.system()} {platform.machine()}, {cpu}"
    text += f", {os.cpu_count()} CPUs"
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        names = [
            tf.config.experimental.get_device_details(g).get("device_name")
            or g.name
            for g in gpus
        ]
        if names:
            text += ", " + ", ".join(names)
    except Exception:  # Device details are informative only.
        pass
    return text


def _default_checkpoint_every(steps):
    """The largest divisor of ``steps`` that is at most 1,000."""
    for every in range(min(steps, _MAX_CHECKPOINT_EVERY), 0, -1):
        if steps % every == 0:
            return every
    return 1


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path, value):
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(partial, path)


class _Progress(keras.callbacks.Callback):
    """Records completed steps and wall time at the end of each epoch."""

    def __init__(self, path, steps_per_epoch, prior_wall_time):
        super().__init__()
        self.path = path
        self.steps_per_epoch = steps_per_epoch
        self.prior_wall_time = prior_wall_time
        self.start = time.monotonic()

    def wall_time(self):
        return self.prior_wall_time + time.monotonic() - self.start

    def on_epoch_end(self, epoch, logs=None):
        if self.path is None:
            return
        _write_json(
            self.path,
            {
                "completed_steps": (epoch + 1) * self.steps_per_epoch,
                "wall_time_s": self.wall_time(),
            },
        )


def _check_int(value, name, minimum=1):
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` should be an int >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def train_sorter(
    sorter,
    seq_len=100,
    steps=10000,
    batch_size=256,
    learning_rate=1e-3,
    schedule="cosine",
    loss="mae",
    output_dir=None,
    checkpoint_every=None,
    seed=0,
    distributions="paper",
    eval_lists=10000,
    verbose="auto",
    jit_compile="auto",
    callbacks=None,
):
    """Trains a sorter on synthetic lists and exports it as a preset.

    The sorter is fitted with Adam to the exact normalized ranks of
    ``steps`` batches of `keras_sodeep.synthetic.synthetic_dataset` (the
    reference code's L1 loss by default):

    ```
    loss = mean_i |sorter(x)_i - rank_i / n|
    ```

    **Checkpoints.** Training runs as ``steps / checkpoint_every`` epochs of
    ``checkpoint_every`` steps, and a ``keras.callbacks.BackupAndRestore``
    in ``output_dir/backup`` saves the weights, the optimizer state (its
    step count drives the schedule) and the epoch at the end of each epoch.
    ``BackupAndRestore`` restores to epoch boundaries (it records the
    batch but resumes at the start of the saved epoch), which is why epochs
    and checkpoints coincide. A run that is killed, even with ``SIGKILL``,
    resumes when called again with the same arguments: at its last
    checkpoint, on fresh batches (the data resumes at batch
    ``epoch * checkpoint_every``), losing fewer than ``checkpoint_every``
    steps. Once done, it writes the preset and deletes the backup; calling
    it again then loads the preset instead of training.

    **Export.** ``output_dir`` becomes a preset folder
    (`keras_sodeep.pretrained.save_preset`): ``config.json``,
    ``model.weights.h5`` and ``metadata.json`` with the architecture,
    ``seq_len``, ``training_steps``, ``wall_time_s`` (summed over resumed
    runs), ``hardware``, the training settings, the §9.1 ``fidelity`` of
    `evaluate_ranker` on ``eval_lists`` lists, the sha256 of the files and
    the package version. ``training_log.csv`` keeps the loss per epoch.

    Args:
        sorter: a sorter, or an architecture name for `build_sorter`
            (``"lstm"``, ``"cnn"``, ``"gru"``, default sizes).
        seq_len: int, or a ``(min, max)`` range for a length-generic sorter
            (masked batches, see `synthetic_dataset`). Defaults to 100.
        steps: int, the number of training steps. Defaults to 10,000.
        batch_size: int, lists per step. Defaults to 256.
        learning_rate: float, Adam's (initial) learning rate. Defaults to
            ``1e-3``.
        schedule: ``"cosine"`` (cosine decay to 0 over ``steps``) or
            ``"constant"``. Defaults to ``"cosine"``.
        loss: a Keras loss for ``compile``. Defaults to ``"mae"``.
        output_dir: str or ``None``, the preset folder (and checkpoints).
            Defaults to ``None``: no checkpoint, no export.
        checkpoint_every: int, steps between checkpoints; must divide
            ``steps``. Defaults to ``None``: the largest divisor of
            ``steps`` up to 1,000.
        seed: int, the seed of the weights (when built here) and of the
            data. Defaults to 0.
        distributions: the mix of `synthetic_dataset`. Defaults to
            ``"paper"``.
        eval_lists: int, lists of the final evaluation (and per length of
            the length sweep, up to 1,000); 0 skips it. Defaults to 10,000.
        verbose: ``fit``'s verbosity (``"auto"``, 0, 1, 2). Defaults to
            ``"auto"``, a progress bar.
        jit_compile: passed to ``compile``. Defaults to ``"auto"``.
        callbacks: list of extra Keras callbacks for ``fit``. Defaults to
            ``None``.

    Returns:
        A pair ``(sorter, metadata)``: the trained sorter and its metadata
        dict (the content of ``metadata.json``).
    """
    steps = _check_int(steps, "steps")
    batch_size = _check_int(batch_size, "batch_size")
    seed = _check_int(seed, "seed", minimum=0)
    min_len, max_len = _check_seq_len(seq_len)
    if checkpoint_every is None:
        checkpoint_every = _default_checkpoint_every(steps)
    checkpoint_every = _check_int(checkpoint_every, "checkpoint_every")
    if steps % checkpoint_every:
        raise ValueError(
            "`checkpoint_every` should divide `steps` (an epoch is "
            f"`checkpoint_every` steps). Received: steps={steps}, "
            f"checkpoint_every={checkpoint_every}"
        )
    if schedule not in ("cosine", "constant"):
        raise ValueError(
            "`schedule` should be 'cosine' or 'constant'. "
            f"Received: schedule={schedule!r}"
        )
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(
            "`learning_rate` should be a positive float. "
            f"Received: learning_rate={learning_rate!r}"
        )
    if output_dir is not None:
        output_dir = os.fspath(output_dir)
        backup_dir = os.path.join(output_dir, BACKUP_DIR)
        metadata_path = os.path.join(output_dir, METADATA_FILE)
        if os.path.isfile(metadata_path) and not os.path.isdir(backup_dir):
            print(f"{output_dir} already holds a trained preset; loading it.")
            return (
                pretrained(output_dir, trainable=True),
                _read_json(metadata_path),
            )
        os.makedirs(output_dir, exist_ok=True)

    keras.utils.set_random_seed(seed)
    if isinstance(sorter, str):
        architecture = sorter
        sorter = build_sorter(sorter, seq_len)
    else:
        architecture = type(sorter).__name__
        if not sorter.built:
            sorter(np.zeros((1, max_len), dtype="float32"))
    if schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    else:
        lr = learning_rate
    sorter.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=loss,
        jit_compile=jit_compile,
    )

    epochs = steps // checkpoint_every
    initial_epoch, prior_wall_time = 0, 0.0
    extra_callbacks = list(callbacks or [])
    callbacks = []
    progress_path = None
    if output_dir is not None:
        state_path = os.path.join(backup_dir, "training_metadata.json")
        progress_path = os.path.join(output_dir, PROGRESS_FILE)
        if os.path.isfile(state_path):
            initial_epoch = int(_read_json(state_path)["epoch"])
            if os.path.isfile(progress_path):
                prior_wall_time = _read_json(progress_path)["wall_time_s"]
            print(
                f"Resuming from step {initial_epoch * checkpoint_every} of "
                f"{steps} (checkpoint in {backup_dir})."
            )
        callbacks += [
            keras.callbacks.BackupAndRestore(
                backup_dir,
                save_freq="epoch",
                double_checkpoint=True,
                delete_checkpoint=False,
            ),
            keras.callbacks.CSVLogger(
                os.path.join(output_dir, LOG_FILE), append=True
            ),
        ]
    progress = _Progress(progress_path, checkpoint_every, prior_wall_time)
    callbacks.append(progress)
    callbacks += extra_callbacks
    data = synthetic_dataset(
        seq_len,
        batch_size,
        distributions=distributions,
        seed=seed,
        start=initial_epoch * checkpoint_every,
    )
    sorter.fit(
        data,
        epochs=epochs,
        steps_per_epoch=checkpoint_every,
        callbacks=callbacks,
        shuffle=False,
        verbose=verbose,
    )
    wall_time = progress.wall_time()

    eval_len = max_len if min_len == max_len else 100
    if getattr(sorter, "seq_len", None) not in (None, eval_len):
        eval_len = sorter.seq_len
    fidelity = None
    if eval_lists:
        fidelity = evaluate_ranker(
            sorter,
            seq_len=eval_len,
            num_lists=eval_lists,
            length_lists=min(eval_lists, 1000),
        )
    metadata = {
        "architecture": type(sorter).__name__,
        "seq_len": getattr(sorter, "seq_len", None),
        "training_steps": steps,
        "wall_time_s": round(wall_time, 1),
        "hardware": hardware_description(),
        "fidelity": fidelity,
        "evaluation": {
            "seq_len": eval_len,
            "num_lists": eval_lists,
            "seed": EVALUATION_SEED,
        },
        "training": {
            "architecture": architecture,
            "seq_len": list(seq_len) if min_len != max_len else max_len,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "schedule": schedule,
            "loss": loss if isinstance(loss, str) else repr(loss),
            "seed": seed,
            "distributions": distributions,
            "checkpoint_every": checkpoint_every,
            "keras_backend": keras.backend.backend(),
        },
    }
    if output_dir is None:
        return sorter, metadata
    record = save_preset(
        sorter,
        output_dir,
        **{
            k: v
            for k, v in metadata.items()
            if k not in ("architecture", "seq_len")
        },
    )
    shutil.rmtree(backup_dir, ignore_errors=True)
    if os.path.isfile(progress_path):
        os.remove(progress_path)
    return sorter, record
