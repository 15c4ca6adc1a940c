"""Tests of keras_sodeep.training and the train / evaluate commands."""

import contextlib
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import rankdata, spearmanr

from keras_sodeep.ranking import ExactRanker, SigmoidRanker, SorterRanker
from keras_sodeep.ranking import get as resolve_ranker
from keras_sodeep.sorters import build_sorter
from keras_sodeep.synthetic import (
    EVALUATION_SEED,
    HELD_OUT,
    evaluation_lists,
    held_out_lists,
)
from keras_sodeep.training import (
    RUN_MARKER,
    RunFolderError,
    evaluate_ranker,
    fidelity_figures,
    held_out_figures,
    train_sorter,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sigmoid_ranks(scores, temperature):
    """NumPy transcription: r_i = 1 + sum_{j != i} sigmoid((x_j - x_i)/t)."""
    diff = (scores[:, None, :] - scores[:, :, None]) / temperature
    above = expit(diff.astype("float64"))
    return 1.0 + above.sum(-1) - 0.5  # Remove the diagonal's sigmoid(0).


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# Fidelity figures.


def test_fidelity_figures_against_scipy_on_permutations(rng):
    n = 12
    target = np.stack([rng.permutation(n) + 1.0 for _ in range(30)])
    predicted = np.stack([rng.permutation(n) + 1.0 for _ in range(30)])
    predicted[:5] = target[:5]  # Five lists ranked exactly.
    figures = fidelity_figures(predicted / n, target / n)
    rho = np.mean([spearmanr(p, t)[0] for p, t in zip(predicted, target)])
    assert figures["spearman"] == pytest.approx(rho, abs=1e-12)
    l1 = np.mean(np.abs(predicted - target)) / n
    assert figures["l1"] == pytest.approx(l1, abs=1e-12)
    exact = np.mean([np.array_equal(p, t) for p, t in zip(predicted, target)])
    assert figures["exact_fraction"] == pytest.approx(exact)


def test_fidelity_figures_exactness_threshold():
    target = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]) / 4
    predicted = np.array([[1.49, 1.51, 3.0, 4.0], [1.0, 2.0, 3.6, 4.0]]) / 4
    figures = fidelity_figures(predicted, target)
    assert figures["exact_fraction"] == 0.5
    with pytest.raises(ValueError, match="same shape"):
        fidelity_figures(predicted[:, :3], target)


# Evaluation.


def test_evaluate_sigmoid_ranker_against_numpy():
    figures = evaluate_ranker(SigmoidRanker(0.1), num_lists=300, lengths=())
    scores, target = evaluation_lists(num_lists=300, seq_len=100)
    target = rankdata(-scores, axis=-1) / 100  # scipy, not the package.
    n = 100
    for key, x in (
        ("l1", scores),
        ("l1_scaled_up", scores * 1000.0 + 50.0),
        ("l1_scaled_down", scores * 0.001),
    ):
        predicted = _sigmoid_ranks(x.astype("float64"), 0.1) / n
        l1 = np.mean(np.abs(predicted - target))
        assert figures[key] == pytest.approx(l1, rel=1e-3, abs=1e-6)
    ranks = _sigmoid_ranks(scores.astype("float64"), 0.1)
    rho = 1 - 6 * ((ranks - target * n) ** 2).sum(-1) / (n * (n * n - 1))
    assert figures["spearman"] == pytest.approx(rho.mean(), abs=1e-4)
    # A temperature of 0.1 blurs the dense lists far more than the
    # scale of the lists mapped by 1000 x + 50 does.
    assert figures["l1_scaled_up"] < figures["l1"] < figures["l1_scaled_down"]


def test_evaluate_held_out_distributions_against_numpy():
    figures = evaluate_ranker(
        SigmoidRanker(0.1), num_lists=50, lengths=(), held_out_lists=40
    )
    assert list(figures["l1_held_out"]) == list(HELD_OUT)
    for name in HELD_OUT:
        scores, _ = held_out_lists(name, num_lists=40, seq_len=100)
        target = rankdata(-scores, axis=-1) / 100
        predicted = _sigmoid_ranks(scores.astype("float64"), 0.1) / 100
        l1 = np.mean(np.abs(predicted - target))
        assert figures["l1_held_out"][name] == pytest.approx(
            l1, rel=1e-3, abs=1e-6
        )
    worst = max(figures["l1_held_out"], key=figures["l1_held_out"].get)
    assert figures["held_out_worst"] == worst == "near_ties"
    assert figures["l1_held_out_worst"] == figures["l1_held_out"][worst]
    assert figures["held_out_worst_ratio"] == pytest.approx(
        figures["l1_held_out_worst"] / figures["l1"]
    )
    exact = evaluate_ranker("exact", num_lists=20, lengths=())
    assert exact["l1_held_out_worst"] < 1e-6
    perfect = held_out_figures(lambda x: rankdata(-x, axis=-1) / 5, 5, 3, 0, 0)
    assert perfect["held_out_worst_ratio"] is None  # The paper-mix L1 is 0.
    skipped = evaluate_ranker("exact", num_lists=20, held_out_lists=0)
    assert "l1_held_out" not in skipped
    with pytest.raises(ValueError, match="held_out_lists"):
        evaluate_ranker("exact", num_lists=20, held_out_lists=-1)


def test_evaluate_sigmoid_reproduces_the_paper_within_ten_percent():
    # Paper, Table 1: handcrafted sorter (lambda = 10), L1 = 0.0350.
    figures = evaluate_ranker("sigmoid:0.1", num_lists=2000, lengths=())
    assert 0.0315 <= figures["l1"] <= 0.0385


def test_evaluate_exact_ranker_and_length_sweep():
    figures = evaluate_ranker(
        ExactRanker(), num_lists=50, lengths=(10, 30), length_lists=20
    )
    # Exact up to the float32 rounding of rank / n.
    assert figures["l1"] < 1e-6 and figures["exact_fraction"] == 1.0
    assert figures["spearman"] == pytest.approx(1.0)
    assert figures["l1_scaled_up"] < 1e-6
    assert list(figures["l1_by_length"]) == ["10", "30"]
    assert max(figures["l1_by_length"].values()) < 1e-6


def test_evaluate_length_generic_sorter_sweep_by_default():
    sorter = build_sorter("gru", 8, units=4, num_layers=1)
    figures = evaluate_ranker(sorter, seq_len=20, num_lists=10, length_lists=4)
    assert list(figures["l1_by_length"]) == [
        "10",
        "50",
        "100",
        "200",
        "500",
        "1000",
    ]
    # The standardized inputs make any sorter scale- and shift-invariant.
    assert figures["l1_scaled_up"] == pytest.approx(figures["l1"], abs=1e-5)


def test_evaluate_fixed_length_sorter_checks():
    sorter = build_sorter("lstm", 8, units=4, num_layers=1)
    figures = evaluate_ranker(sorter, num_lists=20)
    assert "l1_by_length" not in figures
    with pytest.raises(ValueError, match="length 8 only"):
        evaluate_ranker(sorter, seq_len=10, num_lists=20)
    with pytest.raises(ValueError, match="at most 8 items"):
        evaluate_ranker(sorter, num_lists=20, lengths=(10,))


def test_evaluate_fixed_length_sorter_on_shorter_lists():
    # Shorter lists are padded and masked, as `SorterRanker` does in a loss.
    sorter = build_sorter(
        "cnn", 20, filters=4, num_blocks=1, spread_inputs=False
    )
    figures = evaluate_ranker(
        sorter, num_lists=8, held_out_lists=0, length_lists=16
    )
    assert list(figures["l1_by_length"]) == ["10"]
    scores, target = evaluation_lists(16, 10, EVALUATION_SEED)
    ranks = np.asarray(SorterRanker(sorter)(scores))
    expected = np.mean(np.abs(ranks / 10 - target))
    assert expected > 0.01  # an untrained network: far from exact
    assert figures["l1_by_length"]["10"] == pytest.approx(expected, rel=1e-3)


def test_resolve_ranker():
    assert resolve_ranker("sigmoid").temperature == 0.1
    assert resolve_ranker("sigmoid:0.05").temperature == 0.05
    assert resolve_ranker("neuralsort:2").temperature == 2.0
    assert isinstance(resolve_ranker("exact"), ExactRanker)
    untrained = resolve_ranker("untrained:histogram").sorter
    assert type(untrained).__name__ == "HistogramSorter"
    assert untrained.seq_len is None
    assert resolve_ranker("untrained:cnn").seq_len == 100
    # One meaning everywhere: length-generic where the architecture allows.
    assert resolve_ranker("untrained:lstm").seq_len is None
    with pytest.raises(ValueError, match="ARCH"):
        resolve_ranker("untrained:tree")
    with pytest.raises(ValueError, match="should be a number"):
        resolve_ranker("sigmoid:abc")
    with pytest.raises(ValueError, match="Known presets"):
        resolve_ranker("no-such-preset")
    with pytest.raises(TypeError):
        resolve_ranker(3)


# Training.


def test_train_sorter_exports_a_checked_preset(tmp_path, capsys):
    from keras_sodeep.presets import pretrained

    out = tmp_path / "preset"
    sorter = build_sorter("gru", 8, units=4, num_layers=1)
    trained, metadata = train_sorter(
        sorter,
        seq_len=8,
        steps=30,
        batch_size=16,
        checkpoint_every=10,
        output_dir=str(out),
        eval_lists=40,
        verbose=0,
    )
    files = sorted(os.listdir(out))
    assert {"config.json", "model.weights.h5", "metadata.json"} <= set(files)
    assert "backup" not in files and "progress.json" not in files
    on_disk = json.loads((out / "metadata.json").read_text())
    assert on_disk == json.loads(json.dumps(metadata))
    weights = out / "model.weights.h5"
    assert on_disk["sha256"]["model.weights.h5"] == _sha256(weights)
    assert on_disk["sha256"]["config.json"] == _sha256(out / "config.json")
    assert on_disk["training_steps"] == 30
    assert on_disk["architecture"] == "GRUSorter"
    assert on_disk["seq_len"] is None
    assert on_disk["wall_time_s"] > 0 and on_disk["hardware"]
    assert set(on_disk["fidelity"]) >= {"l1", "spearman", "exact_fraction"}
    import keras_sodeep

    assert on_disk["keras_sodeep_version"] == keras_sodeep.__version__
    config = json.loads((out / "config.json").read_text())
    expected = json.loads(
        json.dumps(keras.saving.serialize_keras_object(trained))
    )
    # A preset is the frozen sorter: no training set-up in its config.
    assert "compile_config" in expected and "compile_config" not in config
    expected.pop("compile_config")
    assert config == expected
    assert int(trained.optimizer.iterations.numpy()) == 30
    # The preset loads and predicts as the trained sorter does.
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    loaded = pretrained(str(out))
    np.testing.assert_allclose(loaded(x), trained(x), atol=1e-6)
    # Running again with the same arguments loads the finished preset
    # instead of training.
    capsys.readouterr()
    again, again_metadata = train_sorter(
        build_sorter("gru", 8, units=4, num_layers=1),
        seq_len=8,
        steps=30,
        batch_size=16,
        checkpoint_every=10,
        output_dir=str(out),
        verbose=0,
    )
    assert "already holds a trained preset" in capsys.readouterr().out
    np.testing.assert_allclose(again(x), trained(x), atol=1e-6)
    assert again_metadata["sha256"] == on_disk["sha256"]
    # With other arguments it refuses, instead of returning the old preset.
    with pytest.raises(ValueError, match="other settings.*batch_size"):
        train_sorter(
            build_sorter("gru", 8, units=4, num_layers=1),
            seq_len=8,
            steps=30,
            batch_size=32,
            checkpoint_every=10,
            output_dir=str(out),
            verbose=0,
        )
    with pytest.raises(ValueError, match="other settings.*sorter"):
        train_sorter(
            "gru",
            seq_len=8,
            steps=30,
            batch_size=16,
            checkpoint_every=10,
            output_dir=str(out),
            verbose=0,
        )


def test_train_sorter_resumes_with_the_optimizer_state(tmp_path, capsys):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    out = tmp_path / "run"
    kwargs = dict(
        seq_len=8,
        steps=40,
        batch_size=8,
        checkpoint_every=10,
        output_dir=str(out),
        eval_lists=0,
        verbose=0,
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        train_sorter(
            build_sorter("lstm", 8, units=4, num_layers=1),
            callbacks=[Interrupt()],
            **kwargs,
        )
    state = json.loads((out / "backup" / "training_metadata.json").read_text())
    assert state["epoch"] == 2
    # An interrupted run does not resume with other arguments.
    with pytest.raises(ValueError, match="other settings.*batch_size"):
        train_sorter(
            build_sorter("lstm", 8, units=4, num_layers=1),
            **{**kwargs, "batch_size": 16},
        )
    capsys.readouterr()
    sorter, metadata = train_sorter(
        build_sorter("lstm", 8, units=4, num_layers=1), **kwargs
    )
    assert "Resuming from step 20 of 40" in capsys.readouterr().out
    # 20 restored steps + 20 new ones: the optimizer state came back too.
    assert int(sorter.optimizer.iterations.numpy()) == 40
    with open(out / "training_log.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2, 3]
    assert metadata["fidelity"] is None


def test_train_sorter_bad_arguments():
    with pytest.raises(ValueError, match="should divide"):
        train_sorter("gru", steps=30, checkpoint_every=7)
    with pytest.raises(ValueError, match="schedule"):
        train_sorter("gru", steps=10, schedule="linear")
    with pytest.raises(ValueError, match="architecture"):
        train_sorter("transformer", steps=10)
    with pytest.raises(ValueError, match="CNN"):
        build_sorter("cnn", (5, 10))


def _files(folder):
    """Every file under `folder`, by relative path, with its bytes."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def test_train_sorter_refuses_a_folder_it_did_not_create(tmp_path):
    """Issue 24 item 1: a folder that is not a run folder stays untouched."""
    folder = tmp_path / "mine"
    (folder / "backup").mkdir(parents=True)
    (folder / "backup" / "thesis.tex").write_text("years of work")
    (folder / "config.json").write_text('{"mine": true}')
    (folder / "training_log.csv").write_text("epoch,loss\n0,1.5\n")
    before = _files(folder)
    kwargs = dict(seq_len=6, steps=2, batch_size=4, eval_lists=0, verbose=0)
    with pytest.raises(RunFolderError, match="no keras_sodeep_run.json"):
        train_sorter("gru", output_dir=folder, **kwargs)
    assert _files(folder) == before
    # One file is enough to refuse it, whatever its name.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("notes")
    with pytest.raises(ValueError, match="not a training run folder"):
        train_sorter("gru", output_dir=str(other), **kwargs)
    assert _files(other) == {"notes.txt": b"notes"}
    path = tmp_path / "file.txt"
    path.write_text("text")
    with pytest.raises(RunFolderError, match="is a file"):
        train_sorter("gru", output_dir=str(path), **kwargs)
    assert path.read_text() == "text"


def test_train_sorter_touches_only_the_files_of_its_run(tmp_path, capsys):
    """A run folder: marked, resumable, and other files are left alone."""

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    folder = tmp_path / "run"
    folder.mkdir()  # An empty folder becomes a run folder.
    kwargs = dict(
        seq_len=6,
        steps=20,
        batch_size=4,
        checkpoint_every=10,
        output_dir=str(folder),
        eval_lists=0,
        verbose=0,
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        train_sorter(
            build_sorter("gru", 6, units=2, num_layers=1),
            callbacks=[Interrupt()],
            **kwargs,
        )
    marker = json.loads((folder / RUN_MARKER).read_text())
    assert {"backup", "training_log.csv", "progress.json"} <= set(
        marker["files"]
    )
    # Files the run did not write: one with a name the export would
    # overwrite is refused; others stay as they are.
    (folder / "notes.txt").write_text("my notes")
    (folder / "config.json").write_text('{"mine": true}')
    with pytest.raises(RunFolderError, match="config.json, which the run"):
        train_sorter(build_sorter("gru", 6, units=2, num_layers=1), **kwargs)
    assert (folder / "config.json").read_text() == '{"mine": true}'
    # Refused before it trained: the checkpoint is where it was.
    state = json.loads(
        (folder / "backup" / "training_metadata.json").read_text()
    )
    assert state["epoch"] == 1
    (folder / "config.json").unlink()
    capsys.readouterr()
    sorter, metadata = train_sorter(
        build_sorter("gru", 6, units=2, num_layers=1), **kwargs
    )
    assert "Resuming from step 10 of 20" in capsys.readouterr().out
    assert int(sorter.optimizer.iterations.numpy()) == 20
    assert (folder / "notes.txt").read_text() == "my notes"
    assert not (folder / "backup").exists()
    files = set(os.listdir(folder))
    assert files == {
        RUN_MARKER,
        "notes.txt",
        "training_log.csv",
        "config.json",
        "model.weights.h5",
        "metadata.json",
    }
    marker = json.loads((folder / RUN_MARKER).read_text())
    assert files - {"notes.txt"} <= set(marker["files"])
    # Finished: the same call loads the preset it wrote.
    capsys.readouterr()
    train_sorter(build_sorter("gru", 6, units=2, num_layers=1), **kwargs)
    assert "already holds a trained preset" in capsys.readouterr().out


def test_build_sorter_sizes():
    lstm = build_sorter("lstm", 8, units=4, num_layers=1)
    assert (lstm.seq_len, lstm.units, lstm.num_layers) == (8, 4, 1)
    assert build_sorter("lstm", (4, 8), units=4).seq_len is None
    cnn = build_sorter("cnn", 8, filters=4, num_blocks=2)
    assert (cnn.seq_len, cnn.filters, cnn.num_blocks) == (8, 4, 2)


# Command line.


def _cli_env():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cli_evaluate_prints_a_markdown_table():
    from _keras_sodeep_cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert (
            main(
                [
                    "evaluate",
                    "sigmoid:0.1",
                    "--num-lists",
                    "100",
                    "--lengths",
                    "10,20",
                    "--length-lists",
                    "10",
                ]
            )
            == 0
        )
    lines = stdout.getvalue().strip().splitlines()
    assert lines[0].startswith("| ranker | n | lists | L1 |")
    row = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert row[:3] == ["sigmoid:0.1", "100", "100"]
    scores, _ = evaluation_lists(num_lists=100, seq_len=100)
    target = rankdata(-scores, axis=-1)
    l1 = np.mean(np.abs(_sigmoid_ranks(scores, 0.1) - target)) / 100
    assert float(row[3]) == pytest.approx(l1, abs=1e-4)
    assert "| n | L1 |" in lines and lines[-1].startswith("| 20 |")
    assert "| held-out lists | L1 | / paper-mix L1 |" in lines
    assert any(line.startswith("| worst: ") for line in lines)


def test_cli_train_resumes_after_sigkill(tmp_path):
    out = tmp_path / "preset"
    steps, every = 600, 10
    command = [
        sys.executable, "-m", "_keras_sodeep_cli", "train",
        "--arch", "gru", "--units", "4", "--num-layers", "1",
        "--seq-len", "8", "--steps", str(steps), "--batch-size", "8",
        "--checkpoint-every", str(every), "--output", str(out),
        "--eval-lists", "20", "--log-lines",
    ]  # fmt: skip
    state_path = out / "backup" / "training_metadata.json"
    first = subprocess.Popen(
        command,
        env=_cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        saved = 0
        while time.monotonic() < deadline and first.poll() is None:
            try:
                saved = json.loads(state_path.read_text())["epoch"]
            except (OSError, ValueError, KeyError):
                saved = 0
            if saved >= 2:
                break
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, "finished before the kill"
    assert saved >= 2, "no checkpoint within the time limit"
    assert not (out / "metadata.json").exists()
    saved = json.loads(state_path.read_text())["epoch"]
    assert 2 <= saved < steps // every
    second = subprocess.run(
        command,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert f"Resuming from step {saved * every} of {steps}" in output
    epochs = steps // every
    assert f"Epoch {saved + 1}/{epochs}" in output
    assert f"Epoch 1/{epochs}" not in output
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["training_steps"] == steps
    assert metadata["sha256"]["model.weights.h5"] == _sha256(
        out / "model.weights.h5"
    )
    assert not (out / "backup").exists()
    with open(out / "training_log.csv") as f:
        logged = [int(row["epoch"]) for row in csv.DictReader(f)]
    # The second run logged the epochs from the checkpoint on, once each.
    assert logged[-(epochs - saved) :] == list(range(saved, epochs))


def test_train_sorter_on_ranged_lengths_without_export():
    sorter, metadata = train_sorter(
        "gru",
        seq_len=(4, 12),
        steps=20,
        batch_size=8,
        eval_lists=0,
        verbose=0,
    )
    assert sorter.seq_len is None
    assert int(sorter.optimizer.iterations.numpy()) == 20
    assert metadata["training"]["seq_len"] == [4, 12]
    assert metadata["evaluation"]["seq_len"] == 100
    assert metadata["fidelity"] is None
