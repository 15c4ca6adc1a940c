"""Runs the docstring examples of the package as tests (pytest doctest)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
