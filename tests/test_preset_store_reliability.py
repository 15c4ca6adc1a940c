"""Reliability of keras_sodeep.presets (issue 17, defects 5, 6, 9, 10,
11, 16): races on the cache, read-only caches, timeouts, killed downloads,
bad URLs and bad metadata.

The fixtures (a tiny preset, a loopback server, an empty cache) are those of
`test_pretrained`; subprocesses load the tiny preset through a script
written to a temporary folder.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
import test_pretrained
from test_pretrained import NAME, _closed_url, _files_under, _sha256

from keras_sodeep.presets import files, pretrained, registry

# The fixtures of `test_pretrained`: a tiny preset, a server, a cache.
source = test_pretrained.source
server = test_pretrained.server
env = test_pretrained.env

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _ship_all(env, source):
    for f in ("config.json", "model.weights.h5"):
        shutil.copy(source["folder"] / f, env["shipped"] / NAME)


def _stale_cache(env, source):
    """A cache holding the config and a corrupt (stale) weights file."""
    cached = env["cache"] / NAME
    cached.mkdir(parents=True, exist_ok=True)
    shutil.copy(source["folder"] / "config.json", cached)
    (cached / "model.weights.h5").write_bytes(b"stale weights")
    return cached / "model.weights.h5"


def _loader_script(tmp_path, env, body):
    """A Python script that sees the tiny preset as `test_pretrained` does."""
    script = tmp_path / "loader.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            sys.path[:0] = [{TESTS_DIR!r}, {os.path.dirname(TESTS_DIR)!r}]
            os.environ["KERAS_SODEEP_HOME"] = {str(env["home"])!r}
            import test_pretrained
            from keras_sodeep.presets import registry
            registry.PRESETS_DIR = {str(env["shipped"])!r}
            NAME = {NAME!r}
            """
        )
        + textwrap.dedent(body)
    )
    return script


def _python(script, **kwargs):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.update(kwargs.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        **kwargs,
    )


# -- 5. Two processes race to remove the same stale file. --------------------


def test_stale_file_removed_by_another_process_meanwhile(
    env, source, monkeypatch
):
    # Deterministic: the other process removes the stale file just before
    # this one does. The old code crashed with FileNotFoundError.
    _ship_all(env, source)
    stale = _stale_cache(env, source)
    real_remove = os.remove

    def other_process_first(path):
        if os.fspath(path) == os.fspath(stale):
            real_remove(path)  # The other process wins...
        real_remove(path)  # ...and this one finds nothing.

    monkeypatch.setattr(os, "remove", other_process_first)
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())
    pretrained(NAME)
    assert not stale.exists()


def test_stale_file_replaced_by_another_process_is_kept(env, source):
    # The other process puts a good copy in place between this one's hash
    # and its removal: the good copy stays (the inode tells them apart).
    _ship_all(env, source)
    stale = _stale_cache(env, source)
    good = source["folder"] / "model.weights.h5"
    expected = _sha256(good)
    real = files.sha256_of

    def hash_then_replace(f):
        digest = real(f)
        if f.name == str(stale):
            replacement = stale.parent / "replacement"
            shutil.copy(good, replacement)
            os.replace(replacement, stale)
        return digest

    files.sha256_of = hash_then_replace
    try:
        files.check_cached_file(str(stale), expected)
    finally:
        files.sha256_of = real
    assert _sha256(stale) == expected


# -- 6. A read-only cache holding a stale file. ------------------------------


def test_read_only_cache_with_a_stale_file_uses_the_shipped_copy(
    env, source, monkeypatch
):
    _ship_all(env, source)
    stale = _stale_cache(env, source)
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())

    def read_only(path):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    # Simulated (the tests may run as root, whom chmod does not stop).
    monkeypatch.setattr(os, "remove", read_only)
    pretrained(NAME)
    assert stale.read_bytes() == b"stale weights"  # Left as it was.
    monkeypatch.undo()

    if os.geteuid() != 0:
        os.chmod(stale.parent, 0o555)
        try:
            monkeypatch.setenv("KERAS_SODEEP_HOME", str(env["home"]))
            monkeypatch.setattr(registry, "PRESETS_DIR", str(env["shipped"]))
            pretrained(NAME)
        finally:
            os.chmod(stale.parent, 0o755)


def test_read_only_cache_without_a_shipped_copy_says_so(
    env, source, monkeypatch
):
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(OSError, match="not writable.*KERAS_SODEEP_HOME"):
        pretrained(NAME)


# -- 9. Every network call has a timeout. ------------------------------------


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/presets"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_server_that_never_answers_times_out(env, silent_server, monkeypatch):
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", silent_server)
    monkeypatch.setenv("KERAS_SODEEP_DOWNLOAD_TIMEOUT", "1")
    outcome = {}

    def load():
        try:
            pretrained(NAME)
        except Exception as e:  # noqa: BLE001 (reported below)
            outcome["error"] = e

    start = time.monotonic()
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)  # The old code hangs here (a daemon thread, left).
    assert not thread.is_alive(), "pretrained() hung on a silent server"
    assert time.monotonic() - start < 30
    assert isinstance(outcome.get("error"), OSError)
    assert "timed out" in str(outcome["error"])
    assert socket.getdefaulttimeout() is None  # Restored.
    assert _files_under(env["home"]) == [] or all(
        not f.endswith("config.json") for f in _files_under(env["home"])
    )


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_timeout_is_refused(env, monkeypatch, value):
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())
    monkeypatch.setenv("KERAS_SODEEP_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(ValueError, match="KERAS_SODEEP_DOWNLOAD_TIMEOUT"):
        pretrained(NAME)


# -- 10. A killed download leaves nothing behind for long. ------------------


def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftover_download_folders_are_removed_on_the_next_load(
    env, source, monkeypatch
):
    _ship_all(env, source)
    folder = env["cache"] / NAME
    folder.mkdir(parents=True)
    host = socket.gethostname().replace("-", "_")
    dead = folder / f".download-{host}-{_dead_pid()}-abc"
    alive = folder / f".download-{host}-{os.getppid()}-def"
    old = folder / ".download-otherhost-12-ghi"
    for leftover in (dead, alive, old):
        leftover.mkdir()
        (leftover / "model.weights.h5").write_bytes(b"partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", _closed_url())
    pretrained(NAME)
    assert not dead.exists() and not old.exists()
    assert alive.exists()  # Another live process's download.


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_download_is_cleaned_by_the_next_load(
    env, source, server, monkeypatch, tmp_path, sig
):
    server.publish(NAME, source["folder"])
    weights = f"/presets/{NAME}/model.weights.h5"
    gate = threading.Event()
    files = server.files

    class Stalling(dict):
        def get(self, key, default=None):
            if key == weights:
                gate.wait(120)  # Stalls until the test lets it go.
            return files.get(key, default)

    server.files = Stalling(files)
    script = _loader_script(
        tmp_path,
        env,
        """
        from keras_sodeep.presets import pretrained
        pretrained(NAME)
        """,
    )
    proc = _python(script, env={"KERAS_SODEEP_WEIGHTS_URL": server.url})
    deadline = time.monotonic() + 300
    # Wait for the weights download to be under way (the server stalls it).
    while weights not in server.requests:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(sig)
    proc.wait(60)
    gate.set()
    folder = env["cache"] / NAME
    leftovers = [f for f in os.listdir(folder) if f.startswith(".download-")]
    assert leftovers  # The killed process could not clean up.

    server.files = files
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", server.url)
    pretrained(NAME)
    assert _files_under(env["cache"]) == [
        f"{NAME}/config.json",
        f"{NAME}/model.weights.h5",
    ]
    assert [f for f in os.listdir(folder) if f.startswith(".")] == []


# -- 11. An invalid URL is reported as such. --------------------------------


@pytest.mark.parametrize("url", ["foo", "", "htp://example.org", "/a/path"])
def test_an_invalid_url_is_reported_as_such(env, monkeypatch, url):
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", url)
    with pytest.raises(ValueError, match="should be an http") as info:
        pretrained(NAME)
    assert "KERAS_SODEEP_WEIGHTS_URL" in str(info.value)
    assert "Checksum" not in str(info.value)
    assert _files_under(env["home"]) == []


def test_a_download_error_is_not_a_checksum_error(env, monkeypatch):
    # A URL get_file cannot fetch (an HTTP error) is an OSError.
    monkeypatch.setenv("KERAS_SODEEP_WEIGHTS_URL", "file:///nonexistent/x")
    with pytest.raises(OSError, match="Could not download"):
        pretrained(NAME)


# -- 16. metadata.json that is not an object. --------------------------------


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "3", "null"])
def test_metadata_that_is_not_an_object(source, tmp_path, content):
    folder = tmp_path / "preset"
    shutil.copytree(source["folder"], folder)
    (folder / "metadata.json").write_text(content)
    with pytest.raises(ValueError, match="should hold a JSON object"):
        pretrained(folder)


def test_metadata_sha256_that_is_not_a_dict(source, tmp_path):
    folder = tmp_path / "preset"
    shutil.copytree(source["folder"], folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["sha256"] = ["abc"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="`sha256`.*should be a dict"):
        pretrained(folder)
