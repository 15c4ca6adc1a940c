"""Helpers shared by the benchmark scripts: the machine a run measured.

The scripts of this folder import it as ``_common`` (a script's folder is
first on ``sys.path`` when it runs as ``python benchmarks/NAME.py``).
"""

import argparse
import os
import platform

from keras_sodeep.training import cpu_model


def machine_description():
    """The machine and software a benchmark ran on.

    Returns:
        A dict: ``cpu`` (model name), ``cpus`` (logical CPUs),
        ``usable_cpus`` (those this process may run on), ``memory_gib``,
        ``load_average`` (1, 5 and 15 minutes), ``system``, ``python``,
        ``tensorflow``, ``keras`` and ``backend``.
    """
    import keras

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    memory = _meminfo_bytes("MemTotal:")
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:
        tf_version = None
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": None if memory is None else round(memory / 2**30, 1),
        "load_average": load,
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "tensorflow": tf_version,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }


def available_bytes():
    """The memory available to a new allocation (``MemAvailable``), or None."""
    return _meminfo_bytes("MemAvailable:")


def _meminfo_bytes(field):
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def comma_list(cast, name):
    """An argparse type: comma-separated values of ``cast``; numbers must
    be positive."""

    def parse(text):
        try:
            values = tuple(cast(v) for v in text.split(",") if v)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} should be comma-separated values. Received: {text!r}"
            ) from None
        if cast is not str and any(not v > 0 for v in values):
            kind = "ints" if cast is int else "numbers"
            raise argparse.ArgumentTypeError(
                f"--{name} should be positive {kind}. Received: {text!r}"
            )
        return values

    return parse


def positive(cast):
    """An argparse type: a positive number of type ``cast``."""

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(
                f"should be a positive {cast.__name__}. Received: {text!r}"
            )
        return value

    return parse
