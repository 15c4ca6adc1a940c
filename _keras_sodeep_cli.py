"""The ``keras-sodeep`` console entry, without TensorFlow's start-up lines.

``import keras_sodeep`` imports Keras, hence TensorFlow, whose C++ side
writes its start-up lines (oneDNN, CUDA drivers, CPU features, and absl's
"All log messages before absl::InitializeLog() is called" line) straight to
file descriptor 2, before any code of the command runs; environment
variables do not silence all of them. This module sits outside the package
so that it runs first: it sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set) and
points file descriptor 2 at ``/dev/null`` while TensorFlow is imported, then
restores it and hands over to `keras_sodeep.cli.main`. Errors raised by the
import itself still reach stderr (as a Python traceback).
"""

import contextlib
import os
import sys


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


def main(argv=None):
    """Runs ``keras-sodeep`` (`keras_sodeep.cli.main`) quietly."""
    import_tensorflow_quietly()
    from keras_sodeep.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
