"""Runs every notebook top to bottom in fast mode (KERAS_SODEEP_FAST=1).

Each notebook asserts its key result in its own cells, so a notebook that
runs through is a notebook whose result held. The kernel is this test's
own interpreter (a kernelspec written to a temporary folder), and it
imports the package from this checkout.
"""

import json
import os
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
KERNEL_NAME = "keras-sodeep-test"


def test_notebooks_are_found():
    assert len(NOTEBOOKS) == 5, NOTEBOOKS


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for sys.executable, and the environment of the kernel."""
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": "keras_sodeep tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    python_path = os.environ.get("PYTHONPATH")
    env = {
        "JUPYTER_PATH": str(jupyter_dir),
        "KERAS_SODEEP_FAST": "1",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # The checkout's package, whether or not it is installed.
        "PYTHONPATH": ROOT + (os.pathsep + python_path if python_path else ""),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# Each notebook takes about a minute in its fast mode (a kernel, its
# TensorFlow import, training): CI runs them in its step of heavy tests,
# to keep the default run under 15 minutes. The retrieval notebook, the
# longest, runs with `-m slow` only.
SLOW_NOTEBOOKS = {"05_retrieval.ipynb"}
NOTEBOOK_MARK = {False: pytest.mark.heavy, True: pytest.mark.slow}


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param(f, marks=NOTEBOOK_MARK[f in SLOW_NOTEBOOKS])
        for f in NOTEBOOKS
    ],
)
def test_notebook_runs(filename, kernel_env, tmp_path):
    path = os.path.join(NOTEBOOK_DIR, filename)
    nb = nbformat.read(path, as_version=4)
    # Committed notebooks carry no outputs.
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, filename
    assert "colab-badge" in nb.cells[0].source
    # A last cell checks that the kernel ran this interpreter and this
    # checkout's package (so the install cell did not fetch anything).
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import os, sys, keras_sodeep\n"
            f"assert os.path.samefile(sys.executable, {sys.executable!r})\n"
            "assert os.path.samefile(os.path.dirname(os.path.dirname("
            f"keras_sodeep.__file__)), {ROOT!r})"
        )
    )
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.time()
    client.execute()
    print(f"{filename}: {time.time() - start:.1f} s")
