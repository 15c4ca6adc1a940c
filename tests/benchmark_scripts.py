"""Imports the scripts of the checkout's ``benchmarks/`` folder for tests.

The benchmarks are not part of the installed package: they run as
``python benchmarks/NAME.py`` from a source checkout, where the script's
folder is on ``sys.path`` (for their shared ``_common`` module). `load`
imports one the same way.
"""

import importlib.util
import os
import sys

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)


def load(name):
    """Imports ``benchmarks/<name>.py`` as the module ``benchmark_<name>``."""
    module_name = f"benchmark_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    path = os.path.join(BENCHMARKS, f"{name}.py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
