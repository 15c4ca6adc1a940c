from keras_sodeep import cli


def test_demo_trains_with_both_losses(capsys):
    assert cli.main(["demo", "--epochs", "2", "--samples", "512"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in out.splitlines()
        if line.strip().startswith(("mse", "SpearmanLoss"))
    }
    assert set(rows) == {"mse", "SpearmanLoss"}
    for before, after in rows.values():
        assert -1.0 <= before <= 1.0 and after > before
