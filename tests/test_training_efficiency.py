"""Tests of benchmarks/training_efficiency.py, the training-efficiency study."""

import importlib.util
import json
import math

import pytest
from benchmark_scripts import load

efficiency = load("training_efficiency")


def test_configuration_names():
    config = efficiency.parse_config("lstm-b64-jax")
    assert config == dict(
        efficiency.BASE, backend="jax", batch=64, name="lstm-jax-b64"
    )
    assert efficiency.parse_config("cnn-tf-jit-cosine-fixed")["name"] == "cnn"
    padded = efficiency.parse_config("cnn-paper-padded-nojit-constant")
    assert padded["name"] == "cnn-nojit-constant-padded-paper"
    assert not padded["jit"] and padded["inputs"] == "paper"
    assert set(efficiency.CONFIGS) == {
        efficiency.parse_config(n)["name"] for n in efficiency.CONFIGS
    }
    for name in ("gru", "lstm-fast", "cnn-b0"):
        with pytest.raises(ValueError):
            efficiency.parse_config(name)


def _record(name, trace, lists_per_s=100.0):
    return {
        "config": efficiency.parse_config(name),
        "trace": [{"steps": s, "wall_s": t, "l1": v} for s, t, v in trace],
        "l1": trace[-1][2],
        "steps": trace[-1][0],
        "steps_planned": trace[-1][0],
        "train_s": trace[-1][1],
        "compile_s": 1.0,
        "lists_per_s": lists_per_s,
    }


def test_fastest_path_counts_trained_evaluations_only():
    records = [
        _record("lstm", [(0, 0.0, 0.002), (10, 5.0, 0.03), (20, 9.0, 0.01)]),
        _record("cnn", [(0, 0.0, 0.002), (10, 4.0, 0.02), (20, 7.0, 0.009)]),
    ]
    assert efficiency.time_to(records[0], 0.01) == (9.0, 20)
    assert efficiency.time_to(records[0], 0.005) is None
    text = efficiency.fastest_path(records, 0.01)
    assert text.startswith("Fastest path to L1 ≤ 0.0100 in this run: `cnn`")
    assert "no lower than before training" in text
    assert efficiency.fastest_path(records, 0.001).startswith(
        "No configuration reached"
    )
    table = efficiency.efficiency_table(records, 0.01)
    assert table.splitlines()[2].split(" | ")[-1] == "9.0 (step 20) |"


@pytest.mark.slow  # about 30 s of subprocesses; the default run is at 15 min
def test_quick_run_writes_the_report(tmp_path):
    output = tmp_path / "efficiency.md"
    json_path = tmp_path / "efficiency.json"
    configs = ["cnn", "cnn-constant-padded"]
    argv = ["--quick", "--configs", ",".join(configs), "--steps", "3"]
    argv += ["--output", str(output), "--json", str(json_path)]
    assert efficiency.main(argv) == 0
    text = output.read_text()
    assert text.startswith("## Training efficiency")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    # The table and the L1 trace, a row per configuration in each.
    assert [row.split("`")[1] for row in rows] == configs * 2
    assert "Fastest path to L1 ≤" in text or "No configuration" in text
    assert "Command: `python benchmarks/training_efficiency.py --quick" in text
    assert "Machine: " in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "efficiency.png").stat().st_size > 0
    else:
        assert "No plot: matplotlib is not installed." in text
    records = json.loads(json_path.read_text())["records"]
    assert [r["config"]["name"] for r in records] == configs
    for r in records:
        assert r["config"]["backend"] == "tensorflow"
        assert r["steps"] == 3 and not r["stopped"]
        assert r["lists_per_s"] > 0
        assert 0 < r["compile_s"] <= r["train_s"]
        assert [p["steps"] for p in r["trace"]] == [0, 2, 3]
        for p in r["trace"]:
            assert math.isfinite(p["l1"]) and 0 <= p["l1"] <= 1
