"""Models saved by earlier versions of keras_sodeep load as they were saved,
or refuse with a message that says why (issue 24, items 2 and 3).

The fixtures in ``fixtures/saved_models`` were written once by
``fixtures/make_saved_models.py`` run at earlier commits (see
``fixtures/README.md``); each ``<commit>.json`` records the models'
``evaluate`` losses then.
"""

import importlib.util
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from keras_sodeep import ranking
from keras_sodeep.sorters import GRUSorter, HistogramSorter, LSTMSorter

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SAVED = os.path.join(FIXTURES, "saved_models")
COMMITS = ("6ab74a9", "2042314")


def _maker():
    path = os.path.join(FIXTURES, "make_saved_models.py")
    spec = importlib.util.spec_from_file_location("make_saved_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recorded(commit, case):
    with open(os.path.join(SAVED, f"{commit}.json")) as f:
        return json.load(f)["loss"][case]


def _path(commit, case):
    return os.path.join(SAVED, f"{commit}-{case}.keras")


def _loss_config(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return config["compile_config"]["loss"]


@pytest.mark.parametrize("commit", COMMITS)
@pytest.mark.parametrize(
    "case", ["spearman_histogram_sorter", "spearman_gru_sorter"]
)
def test_a_model_with_a_sorter_ranker_loads_and_evaluates_as_saved(
    commit, case
):
    # Item 2: at 6ab74a9, `gradient_anchors` was refused and the sorters
    # had no `spread_inputs` (the paper's features, today's False).
    model = keras.saving.load_model(_path(commit, case))
    x, y = _maker().data(case)
    loss = model.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_allclose(loss, _recorded(commit, case), rtol=1e-5)


@pytest.mark.parametrize("commit", COMMITS)
@pytest.mark.parametrize("case", ["spearman_default", "recall_default"])
def test_a_saved_default_ranker_is_refused_with_a_way_out(commit, case):
    # Item 3: `ranker=None` meant that version's default; it differs today.
    path = _path(commit, case)
    config = _loss_config(path)
    assert config["config"]["ranker"] is None
    name = config["class_name"]
    with pytest.raises(ValueError, match="earlier keras_sodeep") as info:
        ranking.check_saved_ranker(name, config["config"])
    assert "load_model(path, compile=False)" in str(info.value)
    assert name in str(info.value)
    # The way out the message gives: load uncompiled, compile explicitly.
    model = keras.saving.load_model(path, compile=False)
    loss = keras.saving.deserialize_keras_object(
        {**config, "config": {**config["config"], "ranker": "sigmoid:0.1"}}
    )
    model.compile(optimizer="sgd", loss=loss)
    x, y = _maker().data(case)
    assert np.isfinite(model.evaluate(x, y, batch_size=32, verbose=0))


@pytest.mark.parametrize("commit", COMMITS)
def test_loading_a_saved_default_ranker_is_not_silent(commit):
    # Needs the losses' from_config to call `ranking.check_saved_ranker`.
    with pytest.raises(ValueError, match="earlier keras_sodeep"):
        keras.saving.load_model(_path(commit, "spearman_default"))


def test_sorter_configs_of_earlier_versions():
    # The configs 6ab74a9 wrote (no `spread_inputs`, `gradient_anchors`).
    lstm = LSTMSorter.from_config({"seq_len": 6, "units": 2, "num_layers": 1})
    assert lstm.spread_inputs is False and lstm.seq_len == 6
    gru = GRUSorter.from_config(
        {"units": 2, "num_layers": 1, "context_units": 2}
    )
    assert gru.spread_inputs is False
    old = {"anchors": [8, 8], "hidden_units": 4, "gradient_anchors": None}
    histogram = HistogramSorter.from_config(old)
    assert histogram.anchors == (8, 8)
    assert histogram.gradient_temperature is None
    with pytest.raises(ValueError, match="gradient_anchors=16.*compile=False"):
        HistogramSorter.from_config({**old, "gradient_anchors": 16})
    # Today's configs come back unchanged.
    for sorter in (LSTMSorter(6, units=2, num_layers=1), GRUSorter(units=2)):
        config = sorter.get_config()
        assert type(sorter).from_config(config).get_config() == config
