"""Tests of the ``keras-sodeep`` command line (``_keras_sodeep_cli``)."""

import json
import os
import re
import subprocess
import sys

import pytest

import _keras_sodeep_cli as cli
from keras_sodeep import cli as commands
from keras_sodeep import sorters
from keras_sodeep.losses import SpearmanLoss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_LINE_ERROR = re.compile(r"keras-sodeep( \w+)?: error: \S.*\n")


def _error_line(capsys):
    """The one line an error printed; nothing on stdout."""
    captured = capsys.readouterr()
    assert ONE_LINE_ERROR.fullmatch(captured.err), captured.err
    return captured.err


def test_demo_trains_with_both_losses(capsys):
    assert cli.main(["demo", "--epochs", "3", "--samples", "1024"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in out.splitlines()
        if line.strip().startswith(("mse", "SpearmanLoss "))
    }
    assert set(rows) == {"mse", "SpearmanLoss"}
    for before, after in rows.values():
        assert -1.0 <= before <= 1.0 and after > before
    # The demo's point: on a distorted target the rank loss wins.
    assert rows["SpearmanLoss"][1] > rows["mse"][1] + 0.1
    # It names the default ranker as the loss object shows it (the line
    # the README quotes): the learned histogram-small sorter, smoothed
    # with width 0.6.
    ranker = "PresetRanker('histogram-small', smooth_width=0.6)"
    assert repr(SpearmanLoss().ranker) == ranker
    assert f"  SpearmanLoss() ranks with {ranker}" in out.splitlines()


def test_cli_train_padded_gives_a_fixed_length_sorter(tmp_path, capsys):
    out = tmp_path / "cnn"
    argv = ["train", "--arch", "cnn", "--seq-len", "12", "--min-seq-len"]
    argv += ["4", "--padded", "--steps", "2", "--batch-size", "4"]
    argv += ["--eval-lists", "4", "--gradient-temperature", "0.3"]
    assert cli.main(argv + ["--output", str(out), "--log-lines"]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["seq_len"] == 12
    assert config["gradient_temperature"] == 0.3


def test_cli_train_histogram_anchors(tmp_path, capsys):
    out = tmp_path / "small"
    argv = ["train", "--arch", "histogram", "--anchors", "8,8"]
    argv += ["--seq-len", "20", "--min-seq-len", "4", "--steps", "2"]
    argv += ["--batch-size", "4", "--eval-lists", "4", "--log-lines"]
    assert cli.main(argv + ["--output", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["anchors"] == [8, 8]
    capsys.readouterr()
    for arch, anchors in (("cnn", "8,8"), ("histogram", "8,x")):
        argv = ["train", "--arch", arch, "--anchors", anchors, "--steps"]
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv + ["2", "--output", str(tmp_path / "bad")])
        assert exit_info.value.code == 2
        assert "--anchors" in _error_line(capsys)
    assert not (tmp_path / "bad").exists()


def test_arch_choices_are_the_architectures():
    # Spelled out so that --help imports nothing of the package.
    assert cli.ARCHITECTURES == tuple(sorters.ARCHITECTURES)


def test_help_imports_neither_keras_nor_the_package():
    """``--help`` answers at once: no Keras / TensorFlow import."""
    probe = (
        "import sys, _keras_sodeep_cli as cli\n"
        "for argv in ([], ['demo'], ['presets'], ['train'], ['evaluate']):\n"
        "    try:\n"
        "        cli.main(argv + ['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "heavy = ('keras', 'tensorflow', 'jax', 'numpy', 'keras_sodeep')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    for command in ("demo", "presets", "train", "evaluate"):
        assert f"usage: keras-sodeep {command}" in result.stdout
    listed = re.findall(r"^    (\w+) +\w", result.stdout, re.MULTILINE)
    assert listed[:4] == ["demo", "presets", "train", "evaluate"]
    assert "bench" not in listed


@pytest.mark.parametrize(
    "argv, message",
    [
        # Issue 24 item 7: user errors are one line, not a traceback.
        (["evaluate", "no-such-preset"], "Known presets"),
        (["evaluate", "sigmoid:abc"], "should be a number"),
        (["evaluate", "sigmoid:0.1", "--num-lists", "0"], "--num-lists"),
        (["evaluate", "sigmoid:0.1", "--lengths", "0,10"], "--lengths"),
        (["evaluate", "sigmoid:0.1", "--length-lists", "-2"], "lists"),
        (["evaluate", "sigmoid:0.1", "--seq-len", "1"], "an int >= 2"),
        (["evaluate", "untrained:tree"], "ARCH"),
        (["train", "--arch", "gru", "--steps", "0"], "--steps"),
        (["train", "--arch", "gru", "--batch-size", "-4"], "--batch-size"),
        (["train", "--arch", "gru", "--seq-len", "0"], "--seq-len"),
        (["train", "--arch", "gru", "--lr", "0"], "--lr"),
        (["train", "--arch", "gru", "--lr", "nan"], "--lr"),
        (["train", "--arch", "gru", "--eval-lists", "-1"], "--eval-lists"),
        (["train", "--arch", "lstm", "--units", "0"], "--units"),
        (["train", "--arch", "histogram", "--num-layers", "2"], "apply"),
        (["train", "--arch", "gru", "--checkpoint-every", "3"], "divide"),
        (["train", "--arch", "gru", "--min-seq-len", "200"], "at most"),
        (["train", "--arch", "cnn", "--min-seq-len", "5"], "CNN"),
        (["train", "--arch", "cnn", "--padded"], "needs --min-seq-len"),
        # Issue 24 item 8: nonsense is refused.
        (["demo", "--epochs", "-1"], "--epochs"),
        (["demo", "--epochs", "0"], "--epochs"),
        (["demo", "--samples", "3"], "--samples: should be an int >= 20"),
        (["demo", "--seed", "-1"], "--seed"),
    ],
)
def test_user_errors_are_one_line_with_status_2(
    argv, message, tmp_path, capsys
):
    output = tmp_path / "run"
    if argv[0] == "train":
        argv = argv + ["--output", str(output)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert line.startswith(f"keras-sodeep {argv[0]}: error: ")
    assert message in line
    assert not output.exists()


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, names in os.walk(folder)
        for name in names
    }


def test_train_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    """Issue 24 item 1: nothing of the user's is overwritten or deleted."""
    folder = tmp_path / "mine"
    (folder / "backup").mkdir(parents=True)
    (folder / "backup" / "thesis.tex").write_text("years of work")
    (folder / "config.json").write_text('{"mine": true}')
    (folder / "training_log.csv").write_text("epoch,loss\n0,1.5\n")
    before = _snapshot(folder)
    argv = ["train", "--arch", "gru", "--units", "2", "--num-layers", "1"]
    argv += ["--seq-len", "6", "--steps", "2", "--batch-size", "4"]
    argv += ["--eval-lists", "0", "--log-lines"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--output", str(folder)])
    assert exit_info.value.code == 1
    line = _error_line(capsys)
    assert "keras_sodeep_run.json" in line and str(folder) in line
    assert _snapshot(folder) == before
    # An existing file as --output: refused, untouched.
    path = tmp_path / "notes.txt"
    path.write_text("notes")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--output", str(path)])
    assert exit_info.value.code == 1
    assert "is a file" in _error_line(capsys)
    assert path.read_text() == "notes"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("a bug, not a user error")

    monkeypatch.setitem(commands.COMMANDS, "presets", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["presets"])


def test_console_entry_prints_only_its_own_lines():
    """Issue 13: no TensorFlow / absl / CUDA start-up lines on stderr.

    The entry of this checkout, run as a module; test_wheel.py runs the
    installed ``keras-sodeep`` script of a built wheel the same way.
    """
    command = [sys.executable, "-m", "_keras_sodeep_cli", "presets"]
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stderr
    noise = re.compile(
        r"absl|tensorflow|oneDNN|cuda|cpu_feature_guard|^[IWEF]\d{4} ",
        re.IGNORECASE | re.MULTILINE,
    )
    assert not noise.search(result.stderr), result.stderr
    assert result.stdout.startswith(("| preset |", "No pretrained"))
