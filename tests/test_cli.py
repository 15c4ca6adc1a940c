import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from keras_sodeep import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_trains_with_both_losses(capsys):
    assert cli.main(["demo", "--epochs", "3", "--samples", "1024"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in out.splitlines()
        if line.strip().startswith(("mse", "SpearmanLoss"))
    }
    assert set(rows) == {"mse", "SpearmanLoss"}
    for before, after in rows.values():
        assert -1.0 <= before <= 1.0 and after > before
    # The demo's point: on a distorted target the rank loss wins.
    assert rows["SpearmanLoss"][1] > rows["mse"][1] + 0.1
    assert "learned PresetRanker('histogram-small', smooth_width=0.6)" in out


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
    for arch, anchors in (("cnn", "8,8"), ("histogram", "8,x")):
        argv = ["train", "--arch", arch, "--anchors", anchors, "--steps"]
        with pytest.raises(SystemExit, match="--anchors"):
            cli.main(argv + ["2", "--output", str(tmp_path / "bad")])


def test_console_entry_prints_only_its_own_lines():
    """Issue 13: no TensorFlow / absl / CUDA start-up lines on stderr."""
    script = os.path.join(os.path.dirname(sys.executable), "keras-sodeep")
    script = script if os.path.isfile(script) else shutil.which("keras-sodeep")
    if script:
        command = [script, "presets"]
    else:  # not installed: the same entry, as a module of the checkout
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
