"""The built wheel, installed into a fresh environment, outside the tree.

Builds the wheel from a copy of the sources the build needs, installs it
without dependencies into a new virtual environment whose dependencies come
from this interpreter's site-packages (a ``.pth`` file: nothing is
downloaded), and runs every ``keras-sodeep`` subcommand from a temporary
folder, where no source checkout is in sight.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

# About 80 s of CPU (the build, then TensorFlow imported by two processes,
# the demo's four compiled functions); 3 min on 2 loaded CPUs. CI runs it
# in its step of heavy tests, the whole module in one xdist worker.
pytestmark = [pytest.mark.heavy, pytest.mark.xdist_group("wheel")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_FILES = (
    "pyproject.toml",
    "setup.cfg",
    "README.md",
    "_keras_sodeep_cli.py",
)
# What the heavy subcommands check, run in one process of the environment
# (each process imports TensorFlow, 10 to 30 s).
DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import _keras_sodeep_cli as cli

    results = {}
    for name, argv in json.loads(sys.argv[1]).items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(argv)
            except SystemExit as exit:
                status = exit.code
        results[name] = {
            "status": status, "out": out.getvalue(), "err": err.getvalue()
        }
    import keras_sodeep
    results["package"] = keras_sodeep.__file__
    print(json.dumps(results))
    """
)


def _run(command, **kwargs):
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, **kwargs
    )


def _preset_folders():
    """The preset folders of the source tree, relative to the repository."""
    return [
        os.path.relpath(root, REPO)
        for root, _, names in os.walk(os.path.join(REPO, "keras_sodeep"))
        if "metadata.json" in names and "config.json" in names
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(bin folder, environment variables, wheel path)``."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(os.path.join(REPO, name), source / name)
    shutil.copytree(
        os.path.join(REPO, "keras_sodeep"),
        source / "keras_sodeep",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "--quiet"]
        + ["-w", str(tmp / "dist"), str(source)],
        cwd=tmp,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("keras_sodeep-*.whl")
    env_dir = tmp / "env"
    venv = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert venv.returncode == 0, venv.stderr
    python = env_dir / "bin" / "python"
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install"]
        + ["--no-deps", "--no-index", "--quiet", str(wheel)],
        cwd=tmp,
    )
    assert install.returncode == 0, install.stderr
    purelib = _run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ]
    ).stdout.strip()
    # The dependencies: this interpreter's site-packages, after the wheel.
    with open(os.path.join(purelib, "dependencies.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL")
    }
    env["KERAS_SODEEP_HOME"] = str(tmp / "cache")
    work = tmp / "work"  # the current folder of the commands
    work.mkdir()
    return env_dir / "bin", env, wheel, work


def test_wheel_holds_the_package_the_entry_and_the_presets(installed):
    _, _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "_keras_sodeep_cli.py" in names
    assert "keras_sodeep/__init__.py" in names
    assert "keras_sodeep/cli.py" in names
    assert not any(n.startswith("benchmarks/") for n in names)
    assert "keras_sodeep/benchmarking.py" not in names
    folders = _preset_folders()
    assert any(f.endswith("histogram-small") for f in folders)
    for folder in folders:
        for name in os.listdir(os.path.join(REPO, folder)):
            assert f"{folder}/{name}" in names, f"{folder}/{name}"
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "keras-sodeep = _keras_sodeep_cli:main" in text


def test_every_subcommand_runs_from_the_installed_wheel(installed):
    bin_dir, env, _, work = installed
    script = str(bin_dir / "keras-sodeep")
    # --help: the standard library only; it answers at once.
    for sub in ([], ["demo"], ["presets"], ["train"], ["evaluate"]):
        start = time.monotonic()
        result = _run([script, *sub, "--help"], env=env, cwd=work)
        seconds = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(" ".join(["usage: keras-sodeep", *sub]))
        assert seconds < 10, (sub, seconds)
    # The heavy subcommands: one process of the environment's Python ...
    commands = {
        "demo": ["demo", "--epochs", "1", "--samples", "64"],
        "train": ["train", "--arch", "cnn", "--seq-len", "8", "--steps", "2"]
        + ["--batch-size", "4", "--eval-lists", "4", "--log-lines"]
        + ["--output", "run"],
        "evaluate": ["evaluate", "histogram-small", "--num-lists", "20"]
        + ["--lengths", "none", "--held-out-lists", "5"],
        "evaluate_trained": ["evaluate", str(work / "run")]
        + ["--num-lists", "10"]
        + ["--lengths", "none", "--held-out-lists", "0", "--json"],
        "unknown": ["evaluate", "no-such-preset"],
        "refused": ["train", "--arch", "cnn", "--seq-len", "8"]
        + ["--output", "notes"],
    }
    (work / "notes").mkdir()
    (work / "notes" / "todo.txt").write_text("mine")
    driver = subprocess.Popen(
        [str(bin_dir / "python"), "-c", DRIVER, json.dumps(commands)],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # ... and, meanwhile, the console script itself.
    listing = _run([script, "presets"], env=env, cwd=work)
    out, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err[-3000:]
    results = json.loads(out.strip().splitlines()[-1])
    assert results.pop("package").startswith(str(bin_dir.parent))
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("| preset |")
    assert "histogram-small" in listing.stdout
    assert "tensorflow" not in listing.stderr.lower()
    for name in ("demo", "train", "evaluate", "evaluate_trained"):
        assert results[name]["status"] == 0, (name, results[name])
    assert "SpearmanLoss() ranks with" in results["demo"]["out"]
    assert "Preset written to run" in results["train"]["out"]
    assert (work / "run" / "keras_sodeep_run.json").is_file()
    assert results["evaluate"]["out"].startswith("| ranker | n | lists |")
    assert "| histogram-small |" in results["evaluate"]["out"]
    figures = json.loads(results["evaluate_trained"]["out"])
    assert 0 <= figures["l1"] <= 1
    for name, status in (("unknown", 2), ("refused", 1)):
        assert results[name]["status"] == status, results[name]
        assert results[name]["err"].count("\n") == 1, results[name]["err"]
        assert results[name]["err"].startswith("keras-sodeep ")
    assert os.listdir(work / "notes") == ["todo.txt"]
