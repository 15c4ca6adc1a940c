"""Tests of benchmarks/speed.py, the cost of each ranker in SpearmanLoss."""

import json

import pytest
from benchmark_scripts import load

speed = load("speed")


def _record(ranker, n, mode, seconds, label=None, skipped=None):
    return {
        "ranker": ranker,
        "label": label or ranker,
        "n": n,
        "mode": mode,
        "seconds": seconds,
        "first_seconds": seconds,
        "runs": 5,
        "peak_bytes": 3 * 2**20,
        "skipped": skipped,
    }


def test_default_rankers():
    specs = speed.default_rankers(untrained=("gru", "lstm"))
    # The default is a learned preset, so the paper's
    # handcrafted sorter is listed beside it.
    assert specs[:4] == ["exact", "default", "sigmoid:0.1", "neuralsort:1.0"]
    assert specs[-2:] == ["untrained:gru", "untrained:lstm"]
    with pytest.raises(ValueError, match="untrained"):
        speed.default_rankers(untrained=("cnn",))


def test_benchmark_records_each_ranker_and_mode():
    records = speed.benchmark_rankers(
        ["default", "neuralsort:1.0"],
        sizes=(8,),
        modes=("eager", "xla"),
        repeats=2,
        min_repeats=1,
        budget_s=0.0,
    )
    keys = {(r["ranker"], r["mode"]) for r in records}
    assert keys == {
        (spec, mode)
        for spec in ("dense", "mse", "exact", "default", "neuralsort:1.0")
        for mode in ("eager", "xla")
    }
    for r in records:
        assert r["skipped"] is None and r["n"] == 8
        assert 1 <= r["runs"] <= 2 and 0 < r["seconds"]
        assert r["peak_bytes"] is None or r["peak_bytes"] >= 0
    labels = {r["ranker"]: r["label"] for r in records}
    assert (
        labels["default"]
        == "PresetRanker('histogram-small', smooth_width=0.6) (the default)"
    )
    assert labels["exact"].startswith("exact_rank")


def test_skips_what_does_not_fit_or_takes_too_long(monkeypatch):
    # 8 x 8 pairs of 8 lists take 16 KiB: "available" memory of 1 KiB
    # skips the quadratic ranker, not the others.
    monkeypatch.setattr(speed, "available_bytes", lambda: 1024)
    records = speed.benchmark_rankers(
        ["sigmoid:0.1"],
        sizes=(4, 8),
        modes=("function",),
        batch_size=8,
        repeats=1,
        min_repeats=1,
        max_call_s=1e-9,  # any measured call is "too slow" to grow
    )
    by_key = {(r["ranker"], r["n"]): r for r in records}
    assert by_key[("sigmoid:0.1", 4)]["skipped"].startswith("needs about")
    assert by_key[("exact", 4)]["skipped"] is None
    assert by_key[("exact", 4)]["runs"] == 1
    assert "per call" in by_key[("exact", 8)]["skipped"]


def test_bad_mode():
    with pytest.raises(ValueError, match="modes"):
        speed.benchmark_rankers(["default"], sizes=(4,), modes=("jit",))


def test_speed_table_ratios_and_targets(monkeypatch):
    # The table's logic when the default is the pairwise SigmoidRanker.
    monkeypatch.setattr(speed, "_DEFAULT", "sigmoid:0.1")
    records = [
        _record("dense", 100, "xla", 0.001, "Dense(1) backward (reference)"),
        _record("mse", 100, "xla", 0.0035, "MSE (reference)"),
        _record("exact", 100, "xla", 0.002, "exact_rank (floor)"),
        _record("default", 100, "xla", 0.009, "SigmoidRanker (the default)"),
        _record("exact", 1000, "xla", 0.010, "exact_rank (floor)"),
        _record("default", 1000, "xla", 0.5, "SigmoidRanker (the default)"),
        _record("untrained:gru", 1000, "xla", 2.0, "GRUSorter() untrained"),
        _record("neuralsort:1.0", 1000, "xla", None, skipped="needs 9 GiB"),
    ]
    machine = speed.machine_description()
    machine["load_average_end"] = [1.0, 1.0, 1.0]
    table = speed.speed_table(records, machine)
    rows = [line for line in table.splitlines() if line.startswith("| 1")]
    assert rows[0].startswith("| 100 | Dense(1) backward (reference) | 1 ms")
    assert "| 100 | SigmoidRanker (the default) | 9 ms (4.5x) | 3 |" in rows
    assert "| 1000 | GRUSorter() untrained | 2.00 s (200x) | 3 |" in rows
    assert any("skipped: needs 9 GiB" in row for row in rows)
    # The default against the MSE step + Dense: 9 / (3.5 + 1) = 2: met.
    assert "= 2.00 (target <= 2: met)" in table
    # A sorter other than the default: its ratio, no target.
    assert "n = 1000: GRUSorter() untrained / SigmoidRanker = 4.00\n" in table
    assert machine["cpu"] in table and "Keras" in table
    assert speed.target_figures(records) == {
        "xla": {
            "default_vs_ref": pytest.approx(2.0),
            "untrained:gru_vs_sigmoid": 4.0,
        }
    }


def test_machine_description():
    machine = speed.machine_description()
    assert machine["cpus"] >= machine["usable_cpus"] >= 1
    assert machine["backend"] == "tensorflow" and machine["tensorflow"]


def test_script_writes_the_table_and_records(tmp_path, capsys):
    path = tmp_path / "speed.json"
    argv = ["--sizes", "8", "--modes", "function", "--quiet"]
    argv += ["--rankers", "default", "--repeats", "2", "--min-repeats", "1"]
    argv += ["--budget", "0", "--json", str(path)]
    assert speed.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("| n | ranker | tf.function | peak MiB")
    default = "PresetRanker('histogram-small', smooth_width=0.6)"
    assert f"| 8 | {default} (the default) |" in out
    saved = json.loads(path.read_text())
    assert {r["ranker"] for r in saved["records"]} == {
        "dense",
        "mse",
        "exact",
        "default",
    }
    assert "load_average_end" in saved["machine"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "0"], "--sizes should be positive ints"),
        (["--sizes", "-1"], "--sizes should be positive ints"),
        (["--sizes", "a"], "--sizes should be comma-separated values"),
        (["--modes", "jit"], "--modes should be among eager,function,xla"),
        (["--repeats", "0"], "--repeats: should be a positive int"),
        (["--untrained", "cnn"], "`untrained` should name sorters"),
    ],
)
def test_script_refuses_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        speed.main(argv + ["--quiet"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
