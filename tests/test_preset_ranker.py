"""`PresetRanker` and the preset forms of ``ranker=``: parsing in one
place, built-in names before folders, loading outside traces, saving."""

import os
import pathlib
import shutil

import keras
import numpy as np
import pytest

from keras_sodeep import ranking
from keras_sodeep.losses import SpearmanLoss
from keras_sodeep.presets import (
    PresetRanker,
    list_presets,
    pretrained,
    registry,
    save_preset,
)
from keras_sodeep.ranking import SorterRanker
from keras_sodeep.sorters import GRUSorter


def _scores(seed=0, shape=(3, 7)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _weights_sha(name):
    return list_presets()[name]["sha256"]["model.weights.h5"]


@pytest.fixture
def fresh_copy(tmp_path):
    """A copy of the ``histogram-small`` preset folder: a preset ranker of
    it has never been loaded in this process."""
    folder = tmp_path / "copy-of-histogram-small"
    shutil.copytree(
        os.path.join(registry.PRESETS_DIR, "histogram-small"), folder
    )
    return folder


@pytest.fixture
def gru_folder(tmp_path):
    """A preset folder of a small GRU sorter (not a histogram sorter)."""
    keras.utils.set_random_seed(3)
    sorter = GRUSorter(units=4, num_layers=1)
    sorter(_scores())
    folder = tmp_path / "gru-preset"
    save_preset(sorter, folder, training_steps=0)
    return folder


def test_preset_ranker_is_the_preset_sorter():
    ranker = PresetRanker("histogram-small", smooth_width=0.6)
    assert isinstance(ranker, ranking.Ranker)
    assert repr(ranker) == "PresetRanker('histogram-small', smooth_width=0.6)"
    assert repr(PresetRanker("histogram")) == "PresetRanker('histogram')"
    assert ranker.get_config() == {
        "name": "histogram-small",
        "smooth_width": 0.6,
        "sha256": _weights_sha("histogram-small"),
    }
    x = _scores()
    # Oracle: the preset's sorter, loaded explicitly, behind a SorterRanker.
    for width in (None, 0.6):
        expected = SorterRanker(
            pretrained("histogram-small", smooth_width=width)
        )
        got = PresetRanker("histogram-small", smooth_width=width)(x)
        np.testing.assert_allclose(got, expected(x), rtol=1e-6, atol=1e-6)
    sorter = ranker.sorter
    assert sorter.smooth_outputs and sorter.gradient_temperature == 0.6
    assert not sorter.trainable and ranker.trainable_weights == []
    # The config round trip ranks the same.
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ranker)
    )
    assert repr(restored) == repr(ranker)
    np.testing.assert_allclose(restored(x), ranker(x), rtol=1e-6, atol=1e-6)


def test_preset_ranker_checks_its_arguments(gru_folder):
    with pytest.raises(ValueError, match="Known presets: .*histogram"):
        PresetRanker("no-such-preset")
    with pytest.raises(TypeError, match="`name`"):
        PresetRanker(3)
    with pytest.raises(ValueError, match="smooth_width"):
        PresetRanker("histogram", smooth_width=0)
    assert PresetRanker(gru_folder).preset == os.fspath(gru_folder)


def test_spec_strings_are_preset_rankers():
    for spec, preset, width in (
        ("histogram", "histogram", None),
        ("histogram-small", "histogram-small", None),
        ("histogram-small-smooth:0.6", "histogram-small", 0.6),
        ("histogram-smooth:0.15", "histogram", 0.15),
        ("histogram-smooth", "histogram", 0.6),
    ):
        ranker = ranking.get(spec)
        assert isinstance(ranker, PresetRanker), spec
        assert (ranker.preset, ranker.smooth_width) == (preset, width), spec
    # The default of `ranker=None` belongs to each loss, not to `get`.
    with pytest.raises(TypeError, match="default_ranker"):
        ranking.get(None)
    with pytest.raises(ValueError, match="Known presets: .*histogram-small"):
        ranking.get("no-such-preset")
    with pytest.raises(ValueError, match="In 'no-such-smooth:T'|Known"):
        ranking.get("no-such-smooth:0.5")
    # One parser for every number of a specification.
    for spec, form in (
        ("sigmoid:abc", "sigmoid:T"),
        ("neuralsort:-1", "neuralsort:T"),
        ("histogram-small-smooth:nan", "histogram-small-smooth:T"),
    ):
        with pytest.raises(ValueError, match=f"In '{form}', T should be"):
            ranking.get(spec)


def test_a_builtin_name_wins_over_a_folder_of_that_name(
    gru_folder, tmp_path, monkeypatch
):
    # A preset folder named like a preset and like a specification, in
    # the working directory.
    for name in ("histogram", "sigmoid", "histogram-small-smooth"):
        shutil.copytree(gru_folder, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    ranker = ranking.get("histogram")
    assert isinstance(ranker, PresetRanker) and ranker.preset == "histogram"
    assert type(ranker.sorter).__name__ == "HistogramSorter"
    assert type(pretrained("histogram")).__name__ == "HistogramSorter"
    assert isinstance(ranking.get("sigmoid"), ranking.SigmoidRanker)
    smooth = ranking.get("histogram-small-smooth")
    assert smooth.preset == "histogram-small" and smooth.smooth_width == 0.6
    # A path is a folder.
    for spec in (
        "./histogram",
        pathlib.Path("histogram"),
        str(tmp_path / "sigmoid"),
    ):
        folder = ranking.get(spec)
        assert isinstance(folder, PresetRanker), spec
        assert type(folder.sorter).__name__ == "GRUSorter", spec
    assert ranking.looks_like_path("~/x") and ranking.looks_like_path("a/b")
    assert not ranking.looks_like_path("histogram")


@pytest.mark.parametrize("jit_compile", [False, True])
def test_preset_ranker_built_inside_a_tf_function(fresh_copy, jit_compile):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function")
    import tensorflow as tf

    x = _scores(1, (4, 9))
    y = np.random.default_rng(2).normal(size=(4, 9)).astype("float32")
    folder = str(fresh_copy)

    @tf.function(jit_compile=jit_compile)
    def ranks_and_loss(x, y):
        ranker = PresetRanker(folder, smooth_width=0.6)
        loss = SpearmanLoss(axis=-1, ranker=PresetRanker(folder))
        return ranker(x), loss(y, x)

    ranks, loss = ranks_and_loss(x, y)
    # Oracle: the same presets loaded eagerly.
    smooth = SorterRanker(pretrained(folder, smooth_width=0.6))
    np.testing.assert_allclose(ranks, smooth(x), rtol=1e-5, atol=1e-5)
    eager = SpearmanLoss(axis=-1, ranker=SorterRanker(pretrained(folder)))
    np.testing.assert_allclose(loss, eager(y, x), rtol=1e-5, atol=1e-6)


def test_a_path_ranker_serializes(gru_folder):
    # Issue 24 #6: a pathlib.Path ranker could not be saved.
    ranker = ranking.get(pathlib.Path(gru_folder))
    config = keras.saving.serialize_keras_object(ranker)
    assert config["config"]["name"] == os.fspath(gru_folder)
    restored = keras.saving.deserialize_keras_object(config)
    x = _scores()
    np.testing.assert_allclose(restored(x), ranker(x), rtol=1e-6)


def _spearman_model(ranker):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=SpearmanLoss(ranker=ranker))
    return model


@pytest.mark.parametrize("kind", ["name", "path"])
def test_model_with_a_preset_ranker_saves_and_loads(kind, gru_folder, tmp_path):
    x = _scores(4, (32, 4))
    y = x @ np.array([[1.0], [-1.0], [0.5], [2.0]], "float32")
    if kind == "name":
        ranker = PresetRanker("histogram-small", smooth_width=0.6)
    else:  # Issue 24 #6: needs the losses to store the resolved ranker.
        ranker = pathlib.Path(gru_folder)
    model = _spearman_model(ranker)
    before = model.evaluate(x, y, batch_size=32, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    after = loaded.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-6)


def test_a_preset_whose_weights_changed_is_refused(gru_folder):
    ranker = PresetRanker(gru_folder)
    config = keras.saving.serialize_keras_object(ranker)
    saved = config["config"]["sha256"]
    # The folder gets other weights.
    keras.utils.set_random_seed(4)
    other = GRUSorter(units=4, num_layers=1)
    other(_scores())
    save_preset(other, gru_folder)
    installed = PresetRanker(gru_folder).get_config()["sha256"]
    assert installed != saved
    with pytest.raises(ValueError, match="changed since") as info:
        keras.saving.deserialize_keras_object(config)
    message = str(info.value)
    assert saved in message and installed in message
    assert "compile=False" in message

    recorded = PresetRanker("histogram").get_config()
    assert recorded["sha256"] == _weights_sha("histogram")
    with pytest.raises(ValueError, match="0{64}"):
        PresetRanker.from_config({**recorded, "sha256": "0" * 64})


JAX_SCRIPT = """
import os, sys
import jax
import numpy as np
from keras_sodeep.presets import PresetRanker

folder, inputs, output = sys.argv[1:]
x = np.load(inputs)


@jax.jit
def ranks(x):
    return PresetRanker(folder, smooth_width=0.6)(x)


np.save(output, np.asarray(ranks(x)))
"""


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs JAX in a subprocess and compares with TensorFlow here",
)
def test_preset_ranker_built_inside_jax_jit(fresh_copy, tmp_path):
    import subprocess
    import sys

    x = _scores(5, (3, 11))
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "script.py").write_text(JAX_SCRIPT)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": repo}
    args = [str(fresh_copy), str(tmp_path / "x.npy"), str(tmp_path / "r.npy")]
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = SorterRanker(pretrained(fresh_copy, smooth_width=0.6))(x)
    np.testing.assert_allclose(
        np.load(tmp_path / "r.npy"), expected, rtol=1e-5, atol=1e-5
    )


def _graph_value_and_gradient(loss, y, p, jit_compile=False):
    """``loss(y, p)`` and its gradient with respect to ``p``, in a
    ``tf.function``."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def run(p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(y, p)
        return value, tape.gradient(value, p)

    return run(p)


def test_small_batches_rank_in_one_xla_cluster_inside_a_graph(rng):
    import tensorflow as tf

    from keras_sodeep.presets import ranker as ranker_module

    y = rng.normal(size=(8, 100)).astype("float32")
    p = tf.constant(rng.normal(size=(8, 100)).astype("float32"))

    def step(loss):
        return _graph_value_and_gradient(loss, y, p)

    clustered = SpearmanLoss(axis=-1)
    value, gradient = step(clustered)
    # The graph calls the ranker's XLA function; its value and gradient
    # are those of the ranker's ops run one by one, and of an eager call.
    graph = (
        tf.function(lambda p: clustered(y, p)).get_concrete_function(p).graph
    )
    assert any(
        op.get_attr("_XlaMustCompile")
        for op in graph.get_operations()
        if "_XlaMustCompile" in op.node_def.attr
    )
    plain = SpearmanLoss(axis=-1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ranker_module, "XLA_ITEMS", 0)
        value_plain, gradient_plain = step(plain)
    with tf.GradientTape() as tape:
        tape.watch(p)
        value_eager = plain(y, p)
    gradient_eager = tape.gradient(value_eager, p)
    for v in (value_plain, value_eager):
        np.testing.assert_allclose(value, v, rtol=1e-5)
    for g in (gradient_plain, gradient_eager):
        np.testing.assert_allclose(gradient, g, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_soft_counts_in_chunks_in_a_graph(rng, jit_compile):
    # The sorter's own gradient (no smooth width: no XLA cluster) through
    # the soft counts summed in a loop over chunks; and a smooth preset,
    # whose cluster runs that loop forward only (a loop's gradient cannot
    # cross the boundary of an XLA cluster inside a graph).
    import tensorflow as tf

    from keras_sodeep.sorters import counting

    y = rng.normal(size=(4, 300)).astype("float32")
    p = tf.constant(rng.normal(size=(4, 300)).astype("float32"))

    def value_and_gradient(loss):
        return _graph_value_and_gradient(loss, y, p, jit_compile)

    for ranker in (
        lambda: "histogram",
        lambda: PresetRanker("histogram", smooth_width=0.15),
    ):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(counting, "CHUNK_SIZE", 4096)
            chunked = value_and_gradient(SpearmanLoss(ranker=ranker(), axis=-1))
        whole = value_and_gradient(SpearmanLoss(ranker=ranker(), axis=-1))
        np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5)
        np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-3, atol=1e-6)
