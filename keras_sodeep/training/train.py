"""`train_sorter`: fit a sorter on synthetic lists, resumable, and export it.

The parts, in the order they run: `_check_settings` (arguments),
`_claim_run_folder` (``output_dir`` is new or empty and becomes a run
folder, or is one already), `_finished_preset` (a finished run in
``output_dir`` is loaded, or refused if its settings differ),
`_resume_point` (an interrupted run resumes), `_checkpoint_callbacks`
(backup and log), ``fit``, then `evaluate_ranker` and `_export` (the preset
folder).

A run folder holds ``keras_sodeep_run.json`` (`RUN_MARKER`), which lists
the files the run wrote there; a run writes, overwrites or deletes only
those, and refuses any other folder that is not empty.
"""

import json
import os
import platform
import shutil
import time

import keras
import numpy as np
from keras.src.utils import io_utils

from keras_sodeep import __version__, sorters
from keras_sodeep._checks import check_float, check_int, check_seq_len
from keras_sodeep.presets import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    pretrained,
    read_json,
    save_preset,
)
from keras_sodeep.synthetic import EVALUATION_SEED, synthetic_dataset
from keras_sodeep.training.fidelity import evaluate_ranker

BACKUP_DIR = "backup"
PROGRESS_FILE = "progress.json"
LOG_FILE = "training_log.csv"
RUN_MARKER = "keras_sodeep_run.json"
"""The file that marks a folder as a run folder of `train_sorter`."""
_PARTIAL = ".partial"
_MAX_CHECKPOINT_EVERY = 1000
# What a run writes before and during ``fit``, and at export.
_TRAINING_FILES = (
    BACKUP_DIR,
    LOG_FILE,
    PROGRESS_FILE,
    PROGRESS_FILE + _PARTIAL,
)
_PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)


class RunFolderError(ValueError):
    """`train_sorter` refuses its ``output_dir``.

    Raised, before anything is written, when ``output_dir`` is a file, a
    folder that is neither empty nor a run folder (a run folder holds
    `RUN_MARKER`), a run folder holding a file of the run's names that
    the run did not write, or a run with other settings.
    """


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what Python knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description():
    """A one-line description of the machine: OS, CPU, devices."""
    text = f"{platform.system()} {platform.machine()}, {cpu_model()}"
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


def _write_json(path, value):
    partial = path + _PARTIAL
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(partial, path)


class _Progress(keras.callbacks.Callback):
    """Records completed steps and wall time at the end of each epoch."""

    def __init__(self, path, steps_per_epoch, prior_wall_time, settings):
        super().__init__()
        self.path = path
        self.steps_per_epoch = steps_per_epoch
        self.prior_wall_time = prior_wall_time
        self.settings = settings
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
                "settings": self.settings,
            },
        )


def _check_settings(
    steps, batch_size, seed, seq_len, checkpoint_every, schedule, lr
):
    """Checks the arguments of `train_sorter`; returns checkpoint_every."""
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    check_int(seed, "seed", minimum=0)
    check_seq_len(seq_len)
    if checkpoint_every is None:
        checkpoint_every = _default_checkpoint_every(steps)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every")
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
    check_float(lr, "learning_rate")
    return checkpoint_every


def _sorter_settings(sorter):
    """What identifies a sorter's architecture: class and constructor."""
    config = {
        k: v
        for k, v in sorter.get_config().items()
        if k not in ("name", "trainable", "dtype")
    }
    return {"class": type(sorter).__name__, "config": config}


def _refuse_other_settings(output_dir, recorded, settings):
    """Raises if a run in `output_dir` had other settings than this one.

    Runs recorded before settings were recorded (``recorded`` is None) are
    not checked.
    """
    if recorded is None:
        return
    differ = sorted(
        key
        for key in set(recorded) | set(settings)
        if json.loads(json.dumps(recorded.get(key)))
        != json.loads(json.dumps(settings.get(key)))
    )
    if differ:
        raise RunFolderError(
            f"`output_dir` {output_dir} holds a run with other settings "
            f"({', '.join(differ)}). Use another `output_dir`, or delete "
            "it to start again. Received: "
            + ", ".join(f"{k}={settings.get(k)!r}" for k in differ)
            + "; recorded: "
            + ", ".join(f"{k}={recorded.get(k)!r}" for k in differ)
        )


def _run_files(output_dir):
    """The names the run in `output_dir` wrote, from its `RUN_MARKER`."""
    with open(os.path.join(output_dir, RUN_MARKER), encoding="utf-8") as f:
        return set(json.load(f).get("files", ()))


def _claim_run_folder(output_dir):
    """Makes `output_dir` a run folder, unless it is one; refuses others.

    A new or empty folder becomes a run folder: `RUN_MARKER` is written
    first. A file, or a folder with anything in it but no `RUN_MARKER`,
    raises a `RunFolderError`: nothing of it is read, written or deleted.
    """
    marker = os.path.join(output_dir, RUN_MARKER)
    if os.path.lexists(output_dir) and not os.path.isdir(output_dir):
        raise RunFolderError(
            f"`output_dir` should be a folder; {output_dir} is a file. "
            f"Received: output_dir={output_dir!r}"
        )
    if os.path.isfile(marker):
        return
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise RunFolderError(
            f"`output_dir` {output_dir} is a folder with files in it that "
            f"is not a training run folder (it has no {RUN_MARKER}), so "
            "nothing is written there: use a new or empty folder. "
            f"Received: output_dir={output_dir!r}"
        )
    os.makedirs(output_dir, exist_ok=True)
    _write_json(
        marker,
        {
            "keras_sodeep_version": __version__,
            "files": [RUN_MARKER],
            "note": "A run folder of keras_sodeep.training.train_sorter "
            "(keras-sodeep train): a run writes, overwrites or deletes only "
            "the files listed here.",
        },
    )


def _take_files(output_dir, names, later=()):
    """Adds `names` to the run's files; refuses those it did not write.

    The `later` names, which the run will write at its end, are checked
    too, so that a run is refused before it trains, not after.
    """
    owned = _run_files(output_dir)
    foreign = sorted(
        name
        for name in (*names, *later)
        if name not in owned and os.path.lexists(os.path.join(output_dir, name))
    )
    if foreign:
        raise RunFolderError(
            f"`output_dir` {output_dir} holds {', '.join(foreign)}, which "
            "the run there did not write and would overwrite or delete: "
            "move them away, or use another folder. "
            f"Received: output_dir={output_dir!r}"
        )
    if not owned.issuperset(names):
        marker = os.path.join(output_dir, RUN_MARKER)
        with open(marker, encoding="utf-8") as f:
            record = json.load(f)
        record["files"] = sorted(owned.union(names))
        _write_json(marker, record)


def _finished_preset(output_dir, settings):
    """``(sorter, metadata)`` of a finished run in `output_dir`, or None.

    A finished run with other settings raises a `RunFolderError`.
    """
    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    metadata_path = os.path.join(output_dir, METADATA_FILE)
    if (
        METADATA_FILE not in _run_files(output_dir)
        or not os.path.isfile(metadata_path)
        or os.path.isdir(backup_dir)
    ):
        return None
    metadata = read_json(metadata_path)
    _refuse_other_settings(output_dir, metadata.get("settings"), settings)
    io_utils.print_msg(
        f"{output_dir} already holds a trained preset; loading it."
    )
    return pretrained(output_dir, trainable=True), metadata


def _resume_point(output_dir, checkpoint_every, steps, settings):
    """``(initial_epoch, prior_wall_time)`` of an interrupted run."""
    if output_dir is None:
        return 0, 0.0
    state_path = os.path.join(output_dir, BACKUP_DIR, "training_metadata.json")
    progress_path = os.path.join(output_dir, PROGRESS_FILE)
    progress = {}
    if os.path.isfile(progress_path):
        progress = read_json(progress_path)
        _refuse_other_settings(output_dir, progress.get("settings"), settings)
    if not os.path.isfile(state_path):
        return 0, 0.0
    initial_epoch = int(read_json(state_path)["epoch"])
    io_utils.print_msg(
        f"Resuming from step {initial_epoch * checkpoint_every} of "
        f"{steps} (checkpoint in {os.path.join(output_dir, BACKUP_DIR)})."
    )
    return initial_epoch, progress.get("wall_time_s", 0.0)


def _checkpoint_callbacks(output_dir):
    """Backup (weights, optimizer, epoch) and the CSV log of a run."""
    if output_dir is None:
        return []
    return [
        keras.callbacks.BackupAndRestore(
            os.path.join(output_dir, BACKUP_DIR),
            save_freq="epoch",
            double_checkpoint=True,
            delete_checkpoint=False,
        ),
        keras.callbacks.CSVLogger(
            os.path.join(output_dir, LOG_FILE), append=True
        ),
    ]


def _export(sorter, output_dir, metadata):
    """Writes the preset folder and removes the run's checkpoints."""
    _take_files(output_dir, _PRESET_FILES)
    record = save_preset(
        sorter,
        output_dir,
        **{
            k: v
            for k, v in metadata.items()
            if k not in ("architecture", "seq_len")
        },
    )
    shutil.rmtree(os.path.join(output_dir, BACKUP_DIR), ignore_errors=True)
    progress_path = os.path.join(output_dir, PROGRESS_FILE)
    if os.path.isfile(progress_path):
        os.remove(progress_path)
    return record


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
    it again with the same arguments then loads the preset instead of
    training. A call whose settings (the sorter's class and constructor
    arguments, ``seq_len``, ``steps``, ``batch_size``, ``learning_rate``,
    ``schedule``, ``loss``, ``seed``, ``distributions``,
    ``checkpoint_every``) differ from those of the run in ``output_dir``
    raises a `RunFolderError` (a ``ValueError``): it neither resumes nor
    returns that run.

    **The run folder.** ``output_dir`` should be new, empty, or the folder
    of an earlier call (a run folder: it holds ``keras_sodeep_run.json``,
    written first, with the list of the files the run wrote). Anything else
    - a file, a folder with files in it - raises a `RunFolderError` before
    anything is written. In a run folder, a call writes, overwrites or
    deletes only the run's own files: one of their names there that the run
    did not write (a ``config.json`` put there by hand, say) is refused
    the same way. Other files are left alone.

    **Export.** ``output_dir`` becomes a preset folder
    (`keras_sodeep.presets.save_preset`): ``config.json``,
    ``model.weights.h5`` and ``metadata.json`` with the architecture,
    ``seq_len``, ``training_steps``, ``wall_time_s`` (summed over resumed
    runs), ``hardware``, the training settings, the ``fidelity`` of
    `evaluate_ranker` on ``eval_lists`` lists, the sha256 of the files and
    the package version. ``training_log.csv`` keeps the loss per epoch.
    Messages go through Keras's ``io_utils.print_msg``.

    Args:
        sorter: a sorter, or an architecture name for
            ``keras_sodeep.sorters.build_sorter`` (``"lstm"``, ``"cnn"``,
            ``"gru"``, ``"histogram"``, default sizes).
        seq_len: int, or a ``(min, max)`` range for a length-generic sorter
            (masked batches, see `synthetic_dataset`). Defaults to 100.
        steps: int, the number of training steps. Defaults to 10,000.
        batch_size: int, lists per step. Defaults to 256.
        learning_rate: float, Adam's (initial) learning rate. Defaults to
            ``1e-3``.
        schedule: ``"cosine"`` (cosine decay to 0 over ``steps``) or
            ``"constant"``. Defaults to ``"cosine"``.
        loss: a Keras loss for ``compile``. Defaults to ``"mae"``.
        output_dir: str, path or ``None``, the run folder: checkpoints,
            then the preset (see above). Defaults to ``None``: no
            checkpoint, no export.
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
    checkpoint_every = _check_settings(
        steps,
        batch_size,
        seed,
        seq_len,
        checkpoint_every,
        schedule,
        learning_rate,
    )
    min_len, max_len = check_seq_len(seq_len)
    keras.utils.set_random_seed(seed)
    architecture = sorter if isinstance(sorter, str) else None
    if architecture is not None:
        sorter = sorters.build_sorter(architecture, seq_len)
    elif not sorter.built:
        sorter(np.zeros((1, max_len), dtype="float32"))
    training = {
        "architecture": architecture or type(sorter).__name__,
        "seq_len": list(seq_len) if min_len != max_len else max_len,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "schedule": schedule,
        "loss": loss if isinstance(loss, str) else repr(loss),
        "seed": seed,
        "distributions": distributions,
        "checkpoint_every": checkpoint_every,
        "keras_backend": keras.backend.backend(),
    }
    settings = {
        "sorter": _sorter_settings(sorter),
        "steps": steps,
        **{
            k: v
            for k, v in training.items()
            if k not in ("architecture", "keras_backend")
        },
    }
    if output_dir is not None:
        output_dir = os.fspath(output_dir)
        _claim_run_folder(output_dir)
        finished = _finished_preset(output_dir, settings)
        if finished is not None:
            return finished
        _take_files(output_dir, _TRAINING_FILES, later=_PRESET_FILES)
    initial_epoch, prior_wall_time = _resume_point(
        output_dir, checkpoint_every, steps, settings
    )

    if schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    else:
        lr = learning_rate
    sorter.compile(
        optimizer=keras.optimizers.Adam(lr), loss=loss, jit_compile=jit_compile
    )
    progress = _Progress(
        None if output_dir is None else os.path.join(output_dir, PROGRESS_FILE),
        checkpoint_every,
        prior_wall_time,
        settings,
    )
    sorter.fit(
        synthetic_dataset(
            seq_len,
            batch_size,
            distributions=distributions,
            seed=seed,
            start=initial_epoch * checkpoint_every,
        ),
        epochs=steps // checkpoint_every,
        steps_per_epoch=checkpoint_every,
        callbacks=_checkpoint_callbacks(output_dir)
        + [progress]
        + list(callbacks or []),
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
        "training": training,
        "settings": settings,
    }
    if output_dir is None:
        return sorter, metadata
    return sorter, _export(sorter, output_dir, metadata)
