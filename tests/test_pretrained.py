"""Tests of keras_sodeep.presets: registry, cache, download, checksums.

Downloads go to a loopback HTTP server started by the tests; the cache is a
temporary `KERAS_SODEEP_HOME`.
"""

import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import threading

import keras
import numpy as np
import pytest

import _keras_sodeep_cli as cli
from keras_sodeep.presets import (
    list_presets,
    pretrained,
    registry,
    save_preset,
)

NAME = "tiny-6"
SEQ_LEN = 6


@keras.saving.register_keras_serializable(package="keras_sodeep_tests")
class TinySorter(keras.Model):
    """A fixed-length sorter-like model: scores (B, n) -> (B, n)."""

    def __init__(self, seq_len, units=4, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len
        self.units = units
        self.hidden = keras.layers.Dense(units * seq_len, activation="tanh")
        self.head = keras.layers.Dense(seq_len, activation="sigmoid")

    def call(self, scores, mask=None):
        return self.head(self.hidden(scores))

    def get_config(self):
        config = super().get_config()
        config.update({"seq_len": self.seq_len, "units": self.units})
        return config


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _files_under(folder):
    """Every file below `folder`, hidden ones included, relative paths."""
    found = []
    for root, _, files in os.walk(folder):
        for f in files:
            found.append(os.path.relpath(os.path.join(root, f), folder))
    return sorted(found)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A saved preset folder and the model it came from."""
    keras.utils.set_random_seed(1)
    model = TinySorter(SEQ_LEN)
    model(np.zeros((1, SEQ_LEN), "float32"))
    folder = tmp_path_factory.mktemp("source") / NAME
    save_preset(
        model,
        folder,
        training_steps=12,
        wall_time_s=3.5,
        hardware="test CPU",
        fidelity={"l1": 0.0123, "spearman": 0.987, "exact_fraction": 0.25},
    )
    x = np.random.default_rng(0).normal(size=(5, SEQ_LEN)).astype("float32")
    return {"model": model, "folder": folder, "x": x, "y": np.asarray(model(x))}


class _Server:
    """A loopback HTTP server of {url path: bytes}, run in a thread."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.truncate = set()  # Paths whose response is cut short.
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A truncated response closes the connection early.
                self.wfile.write(
                    body[: len(body) // 2]
                    if self.path in server.truncate
                    else body
                )
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/presets"
        self.thread = threading.Thread(target=self.httpd.serve_forever)
        self.thread.daemon = True
        self.thread.start()

    def publish(self, name, folder):
        for f in ("config.json", "model.weights.h5", "metadata.json"):
            self.files[f"/presets/{name}/{f}"] = (folder / f).read_bytes()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


def _closed_url():
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/presets"


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.stop()


@pytest.fixture
def env(tmp_path, monkeypatch, source):
    """An empty cache and a shipped folder holding only the metadata."""
    home = tmp_path / "home"
    shipped = tmp_path / "shipped"
    (shipped / NAME).mkdir(parents=True)
    shutil.copy(source["folder"] / "metadata.json", shipped / NAME)
    monkeypatch.setenv("KERAS_SODEEP_HOME", str(home))
    monkeypatch.setattr(registry, "PRESETS_DIR", str(shipped))
    return {"home": home, "cache": home / "presets", "shipped": shipped}


def _assert_same_model(sorter, source):
    np.testing.assert_allclose(
        np.asarray(sorter(source["x"])), source["y"], rtol=1e-6, atol=1e-6
    )


def test_save_preset_writes_a_preset_folder(source):
    folder = source["folder"]
    assert sorted(os.listdir(folder)) == [
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["architecture"] == "TinySorter"
    assert metadata["seq_len"] == SEQ_LEN
    assert metadata["training_steps"] == 12
    assert metadata["fidelity"]["l1"] == 0.0123
    assert metadata["sha256"] == {
        "config.json": _sha256(folder / "config.json"),
        "model.weights.h5": _sha256(folder / "model.weights.h5"),
    }
    assert metadata["keras_version"] == keras.__version__


def test_download_verifies_caches_and_loads(env, server, source, monkeypatch):
    server.publish(NAME, source["folder"])
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", server.url + "/")
    sorter = pretrained(NAME)
    _assert_same_model(sorter, source)
    assert not sorter.trainable
    assert sorter.trainable_weights == []
    assert sorted(server.requests) == [
        f"/presets/{NAME}/config.json",
        f"/presets/{NAME}/model.weights.h5",
    ]
    # The cache holds exactly the two files, byte for byte, nothing else.
    assert _files_under(env["cache"]) == [
        f"{NAME}/config.json",
        f"{NAME}/model.weights.h5",
    ]
    for f in ("config.json", "model.weights.h5"):
        assert (env["cache"] / NAME / f).read_bytes() == (
            source["folder"] / f
        ).read_bytes()

    # Server down, cached copy: loads from the cache without a request.
    server.stop()
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())
    again = pretrained(NAME, trainable=True)
    _assert_same_model(again, source)
    assert again.trainable and len(again.trainable_weights) == 4


def test_corrupt_download_raises_and_leaves_nothing(
    env, server, source, monkeypatch
):
    server.publish(NAME, source["folder"])
    path = f"/presets/{NAME}/model.weights.h5"
    corrupt = bytearray(server.files[path])
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.files[path] = bytes(corrupt)
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", server.url)
    expected = _sha256(source["folder"] / "model.weights.h5")
    got = hashlib.sha256(bytes(corrupt)).hexdigest()
    with pytest.raises(ValueError, match="[Cc]hecksum") as info:
        pretrained(NAME)
    assert expected in str(info.value) and got in str(info.value)
    assert "model.weights.h5" not in " ".join(_files_under(env["home"]))
    assert all(f.endswith("config.json") for f in _files_under(env["home"]))


@pytest.mark.parametrize("how", ["closed_early", "short_and_consistent"])
def test_partial_download_leaves_nothing(env, server, source, monkeypatch, how):
    server.publish(NAME, source["folder"])
    path = f"/presets/{NAME}/model.weights.h5"
    if how == "closed_early":
        # Content-Length says the full size, half the body comes.
        server.truncate.add(path)
        error = OSError
    else:
        # A short file served with a matching Content-Length.
        server.files[path] = server.files[path][:1000]
        error = ValueError
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", server.url)
    with pytest.raises(error):
        pretrained(NAME)
    assert "model.weights.h5" not in " ".join(_files_under(env["home"]))


def test_server_down_without_cache_raises(env, monkeypatch):
    url = _closed_url()
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", url)
    with pytest.raises(OSError, match="Could not download") as info:
        pretrained(NAME)
    assert f"{url}/{NAME}/config.json" in str(info.value)
    assert _files_under(env["home"]) == []


def test_corrupt_cache_is_replaced(env, server, source, monkeypatch):
    cached = env["cache"] / NAME
    cached.mkdir(parents=True)
    shutil.copy(source["folder"] / "config.json", cached)
    (cached / "model.weights.h5").write_bytes(b"not an h5 file")
    server.publish(NAME, source["folder"])
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", server.url)
    _assert_same_model(pretrained(NAME), source)
    assert server.requests == [f"/presets/{NAME}/model.weights.h5"]
    assert _sha256(cached / "model.weights.h5") == _sha256(
        source["folder"] / "model.weights.h5"
    )


def test_shipped_copy_is_used_and_checked(env, source, monkeypatch):
    for f in ("config.json", "model.weights.h5"):
        shutil.copy(source["folder"] / f, env["shipped"] / NAME)
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())
    _assert_same_model(pretrained(NAME), source)
    assert _files_under(env["home"]) == []  # Shipped files are not copied.

    weights = env["shipped"] / NAME / "model.weights.h5"
    corrupt = bytearray(weights.read_bytes())
    corrupt[-1] ^= 0xFF
    weights.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="Checksum mismatch.*shipped"):
        pretrained(NAME)


def test_local_folder(source, tmp_path):
    _assert_same_model(pretrained(str(source["folder"])), source)
    _assert_same_model(pretrained(source["folder"]), source)

    # Without metadata.json the folder still loads.
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.weights.h5"):
        shutil.copy(source["folder"] / f, bare)
    _assert_same_model(pretrained(bare), source)

    # With it, the recorded checksums are enforced.
    tampered = tmp_path / "tampered"
    shutil.copytree(source["folder"], tampered)
    weights = tampered / "model.weights.h5"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="Checksum mismatch"):
        pretrained(tampered)

    (bare / "model.weights.h5").unlink()
    with pytest.raises(ValueError, match="lacks model.weights.h5"):
        pretrained(bare)


def test_unknown_name_lists_known_ones(env, monkeypatch, tmp_path):
    (env["shipped"] / "other-8").mkdir()
    (env["shipped"] / "other-8" / "metadata.json").write_text("{}")
    with pytest.raises(ValueError, match=f"Known presets: other-8, {NAME}"):
        pretrained("lstm-9999")
    monkeypatch.setattr(registry, "PRESETS_DIR", str(tmp_path / "x"))
    with pytest.raises(ValueError, match="none are installed"):
        pretrained("lstm-9999")
    with pytest.raises(TypeError, match="name_or_path"):
        pretrained(3)
    with pytest.raises(TypeError, match="trainable"):
        pretrained(NAME, trainable="yes")


def test_presets_returns_metadata(env, source, monkeypatch):
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", "https://example.org/w/")
    (env["shipped"] / "README.md").write_text("not a preset")
    (env["shipped"] / "__pycache__").mkdir()
    info = list_presets()
    assert list(info) == [NAME]
    expected = json.loads((source["folder"] / "metadata.json").read_text())
    assert info[NAME] == {**expected, "url": f"https://example.org/w/{NAME}"}


def test_presets_cli_prints_a_markdown_table(env, capsys):
    extra = {
        "architecture": "LSTMSorter",
        "seq_len": 100,
        "fidelity": {"l1": 0.0033, "rescaled": {"x0.001": {"l1": 0.004}}},
    }
    (env["shipped"] / "lstm-100").mkdir()
    (env["shipped"] / "lstm-100" / "metadata.json").write_text(
        json.dumps(extra)
    )
    assert cli.main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [
        [c.strip() for c in line.strip("|").split("|")] for line in lines[:4]
    ]
    header = cells[0]
    assert header[:3] == ["preset", "architecture", "seq_len"]
    assert set(cells[1]) == {"---"} and len(cells[1]) == len(header)
    rows = {row[0]: dict(zip(header, row)) for row in cells[2:4]}
    assert rows["lstm-100"]["l1"] == "0.0033"
    assert rows["lstm-100"]["rescaled/x0.001/l1"] == "0.004"
    assert rows[NAME]["rescaled/x0.001/l1"] == ""
    assert rows[NAME]["architecture"] == "TinySorter"
    assert rows[NAME]["spearman"] == "0.987"
    assert rows[NAME]["training steps"] == "12"
    assert rows[NAME]["hardware"] == "test CPU"
    assert str(env["cache"]) in "\n".join(lines[4:])

    assert cli.main(["presets", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {NAME, "lstm-100"}


def test_presets_cli_with_no_preset(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(registry, "PRESETS_DIR", str(tmp_path))
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "No pretrained sorter presets are installed" in out
    assert "|" not in out


def test_shipped_presets_are_well_formed():
    """Every preset shipped with the package is loadable as recorded."""
    for name, metadata in list_presets().items():
        hashes = metadata["sha256"]
        assert set(hashes) >= {"config.json", "model.weights.h5"}, name
        assert "fidelity" in metadata and "architecture" in metadata, name
        folder = os.path.join(registry.PRESETS_DIR, name)
        for f, expected in hashes.items():
            if os.path.isfile(os.path.join(folder, f)):
                assert _sha256(os.path.join(folder, f)) == expected, (name, f)


def _real_sorters():
    sorters = pytest.importorskip("keras_sodeep.sorters")
    return {
        "lstm": (lambda: sorters.LSTMSorter(6, units=4, num_layers=1), 6),
        "lstm-generic": (
            lambda: sorters.LSTMSorter(None, units=4, num_layers=1),
            7,
        ),
        "cnn": (lambda: sorters.CNNSorter(6, filters=4, num_blocks=2), 6),
        "gru": (lambda: sorters.GRUSorter(units=4, num_layers=1), 9),
    }


@pytest.mark.parametrize("kind", ["lstm", "lstm-generic", "cnn", "gru"])
def test_real_sorters_round_trip(kind, tmp_path, monkeypatch):
    make, n = _real_sorters()[kind]
    keras.utils.set_random_seed(2)
    sorter = make()
    x = np.random.default_rng(3).normal(size=(4, n)).astype("float32")
    sorter(x)
    # Heads start at zero (a correction to the spread estimate): give this
    # one weights of its own, as training would.
    kernel = sorter.head.kernel
    noise = np.random.default_rng(4).normal(size=kernel.shape)
    kernel.assign(0.1 * noise.astype("float32"))
    y = np.asarray(sorter(x))
    metadata = save_preset(sorter, tmp_path / "shipped" / kind)
    assert metadata["architecture"] == type(sorter).__name__
    assert metadata["seq_len"] == sorter.seq_len

    # A freshly deserialized sorter differs: the weights do the work.
    config = json.loads(
        (tmp_path / "shipped" / kind / "config.json").read_text()
    )
    fresh = keras.saving.deserialize_keras_object(config)
    assert np.abs(np.asarray(fresh(x)) - y).max() > 1e-4

    monkeypatch.setattr(registry, "PRESETS_DIR", str(tmp_path / "shipped"))
    monkeypatch.setenv("KERAS_SODEEP_HOME", str(tmp_path / "home"))
    loaded = pretrained(kind)
    assert type(loaded) is type(sorter) and not loaded.trainable
    np.testing.assert_allclose(np.asarray(loaded(x)), y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_shipped_preset_loads_offline_and_matches_its_figures(
    name, tmp_path, monkeypatch
):
    """A shipped preset loads from the package alone (an empty cache, a
    download address that refuses connections) and ranks as well as its
    metadata records, on lists it was not evaluated on."""
    from keras_sodeep.synthetic import evaluation_lists

    monkeypatch.setenv("KERAS_SODEEP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", "http://127.0.0.1:9/none")
    sorter = pretrained(name)
    home = tmp_path / "home"
    assert not home.exists() or not [p for p in home.rglob("*") if p.is_file()]
    metadata = list_presets()[name]
    n = metadata["seq_len"] or 100
    scores, target = evaluation_lists(300, n, seed=7)
    predicted = np.asarray(sorter.predict(scores, verbose=0))
    l1 = float(np.mean(np.abs(predicted - target)))
    recorded = metadata["fidelity"]["l1"]
    assert l1 < 1.3 * recorded + 2e-4, (name, l1, recorded)
    # Invariant to the scale and shift of a list, as recorded.
    rescaled = np.asarray(sorter.predict(scores * 1000 + 50, verbose=0))
    assert np.abs(rescaled - predicted).max() < 1e-3


def test_save_preset_leaves_the_optimizer_out(tmp_path):
    h5py = pytest.importorskip("h5py")
    from keras_sodeep.sorters import LSTMSorter

    sorter = LSTMSorter(6, units=4, num_layers=1)
    sorter.compile(optimizer="adam", loss="mae")
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    sorter.fit(x, np.zeros_like(x), epochs=1, verbose=0)
    save_preset(sorter, tmp_path / "p")
    datasets = {}
    with h5py.File(tmp_path / "p" / "model.weights.h5", "r") as f:
        f.visititems(
            lambda name, o: (
                datasets.update({name: o.size})
                if isinstance(o, h5py.Dataset)
                else None
            )
        )
    assert not [name for name in datasets if name.startswith("optimizer")]
    sizes = list(datasets.values())
    assert sum(sizes) == sorter.count_params()
    loaded = pretrained(str(tmp_path / "p"))
    np.testing.assert_allclose(loaded(x), sorter(x), rtol=1e-6, atol=1e-6)


def test_no_public_name_shadows_a_module():
    import sys
    import types

    import keras_sodeep
    import keras_sodeep.presets as store

    assert callable(keras_sodeep.list_presets)
    assert callable(keras_sodeep.pretrained)
    assert store.save_preset is save_preset
    assert keras_sodeep.list_presets is list_presets
    assert keras_sodeep.presets is store
    assert isinstance(keras_sodeep.presets, types.ModuleType)
    # No module-class swap: the package is a plain module.
    assert type(sys.modules["keras_sodeep"]) is types.ModuleType
    # The shipped preset folders are inside the subpackage.
    assert os.path.isfile(
        os.path.join(registry.PRESETS_DIR, "histogram", "metadata.json")
    )


def test_histogram_smooth_spec():
    from keras_sodeep.ranking import SorterRanker
    from keras_sodeep.ranking import get as get_ranker

    for preset, anchors, groups in (
        ("histogram", (64, 256, 256, 256), 64),
        ("histogram-small", (16, 16, 16), 32),
    ):
        ranker = get_ranker(f"{preset}-smooth:0.15")
        assert isinstance(ranker, SorterRanker)
        sorter = ranker.sorter
        assert sorter.smooth_outputs and sorter.gradient_temperature == 0.15
        assert sorter.anchors == anchors and sorter.gradient_bins == groups
        assert not sorter.trainable
        base = pretrained(preset)
        for a, b in zip(sorter.get_weights(), base.get_weights()):
            np.testing.assert_array_equal(a, b)
        spec = f"{preset}-smooth"
        assert get_ranker(spec).sorter.gradient_temperature == 0.6
        for bad in ("x", "0", "-1", "inf"):
            with pytest.raises(ValueError, match=f"In '{spec}:T'"):
                get_ranker(f"{spec}:{bad}")
