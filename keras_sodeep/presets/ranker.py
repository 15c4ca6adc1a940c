"""`PresetRanker`: a shipped preset, or a preset folder, as a ranker."""

import os

import keras

from keras_sodeep._checks import check_float, is_traced
from keras_sodeep.presets import files, registry
from keras_sodeep.presets.io import pretrained
from keras_sodeep.ranking import Ranker, SorterRanker


def _outside_traces(load):
    """Runs ``load()`` eagerly, also while a function is being traced.

    A sorter loaded while a ``tf.function`` (``fit``, a custom training
    step, ``jit_compile`` or not) is being traced would create its
    variables inside the graph and never hold the preset's weights:
    ``tf.init_scope`` lifts the loading out to eager execution. (A
    documented backend branch: Keras has no backend-neutral way out of a
    trace. Under ``jax.jit`` the variables hold concrete values anyway.)
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():
            return load()
    return load()


XLA_ITEMS = 16_384
"""The largest batch (items over all its lists) a `PresetRanker` ranks as
one XLA cluster inside a TensorFlow graph (see `PresetRanker.rank`)."""

# (preset, smooth_width, weights sha256) -> the frozen sorter, loaded once.
_LOADED = {}


def _shared_sorter(preset, smooth_width):
    """The frozen sorter of a preset, loaded once per process.

    Sharing it lets a function traced twice (``tf.function`` traces a
    function that creates variables a second time) build rankers that
    create no new variables the second time.
    """
    key = (preset, smooth_width, files.weights_sha256(preset))
    if key not in _LOADED:
        _LOADED[key] = _outside_traces(
            lambda: pretrained(preset, smooth_width=smooth_width)
        )
    return _LOADED[key]


def _check_preset(name):
    """The preset name or folder `name` as a str, if it exists."""
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(
            "`name` should be a preset name or a preset folder. "
            f"Received: name={name!r}"
        )
    key = os.fspath(name)
    if not isinstance(name, str) and os.path.dirname(key) == "":
        # A path object is a folder, also when named like a preset.
        key = os.path.join(os.curdir, key)
    known = registry.preset_names()
    if key not in known and not os.path.isdir(key):
        raise ValueError(
            "`name` should be a known preset name or a preset folder. Known "
            f"presets: {', '.join(known) or 'none are installed'}. "
            f"Received: name={key!r}"
        )
    return key


@keras.saving.register_keras_serializable(package="keras_sodeep")
class PresetRanker(SorterRanker):
    """Ranks with a pretrained sorter: a shipped preset or a preset folder.

    ``PresetRanker("histogram")`` is ``SorterRanker(pretrained("histogram"))``
    (frozen), except that the sorter is loaded on first use: constructing
    one is cheap, and constructing or first calling it inside a traced
    function (a ``tf.function``, with ``jit_compile`` or not, ``jax.jit``,
    a custom training step) loads the preset's weights eagerly all the
    same. The rankers of one preset and width share one frozen sorter,
    loaded once per process (to fine-tune a sorter, pass
    ``keras_sodeep.pretrained(name)`` to the loss instead). With
    ``smooth_width=T`` the sorter's outputs are its smooth
    ranking (``keras_sodeep.presets.pretrained(name, smooth_width=T)``):
    each item ranked by a sigmoid against the list's quantile groups,
    ``T`` times the list's interquartile spread wide; the string
    ``"NAME-smooth:T"`` is a shorthand for it (``ranking.get``).

    Its config holds the preset's name, ``smooth_width`` and the sha256 of
    the preset's weights; a saved model whose preset has other weights
    today refuses to load (``from_config`` raises a ``ValueError`` that
    gives both hashes), so a loaded loss never computes something else
    silently.

    Args:
        name: a shipped preset's name (see
            ``keras_sodeep.presets.list_presets``) or a preset folder: a
            path object, or a str that is not a preset's name.
        smooth_width: positive float or ``None``, the width of the soft
            outputs as a fraction of the list's interquartile spread.
            Defaults to ``None``: the sorter's own outputs.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.presets import PresetRanker
    >>> ranker = PresetRanker("histogram-small", smooth_width=0.6)
    >>> ranker
    PresetRanker('histogram-small', smooth_width=0.6)
    >>> ranks = ranker(np.array([[0.5, 2.0, -1.0, 0.7]], "float32"))
    >>> [int(i) for i in np.argsort(np.asarray(ranks)[0])]  # best first
    [1, 3, 0, 2]
    >>> sorted(ranker.get_config())
    ['name', 'sha256', 'smooth_width']
    """

    def __init__(self, name, smooth_width=None, **kwargs):
        # The layer's own name is Keras's default; `name` is the preset's.
        kwargs.pop("trainable", None)
        Ranker.__init__(self, trainable=False, **kwargs)
        self.preset = _check_preset(name)
        if smooth_width is not None:
            smooth_width = check_float(smooth_width, "smooth_width")
        self.smooth_width = smooth_width
        self._sorter = None
        self._xla_rank = None
        if keras.backend.backend() != "tensorflow":
            # No way out of a JAX trace to load in: load at construction,
            # which runs eagerly (the shared sorter makes it cheap).
            self.sorter  # noqa: B018 (loads it)

    def rank(self, scores, mask):
        """`SorterRanker.rank`; with ``smooth_width``, in a TensorFlow
        graph, on a batch of at most ``XLA_ITEMS`` items, compiled as one
        XLA cluster.

        Inside a ``tf.function`` without ``jit_compile``, TensorFlow runs
        the sorter's many small ops one by one; on small batches one XLA
        cluster for the ranker's forward and backward passes saves part of
        that overhead (in the speed benchmark at n = 100, less than the
        benchmark's noise). On large batches TensorFlow's own kernels, which use
        every core, are faster, and a batch of unknown size is left to them
        too. Only with smooth outputs: the sorter's own gradient runs
        through loops, whose gradient cannot cross the cluster's boundary.
        """
        if self.smooth_width is not None and self._in_xla_cluster(scores):
            if self._xla_rank is None:
                import tensorflow as tf

                self.sorter  # noqa: B018 (loads it, outside the cluster)
                self._xla_rank = tf.function(
                    super().rank, jit_compile=True, autograph=False
                )
            return self._xla_rank(scores, mask)
        return super().rank(scores, mask)

    @staticmethod
    def _in_xla_cluster(scores):
        if keras.backend.backend() != "tensorflow" or not is_traced(scores):
            return False
        shape = tuple(scores.shape)
        if any(d is None for d in shape):
            return False
        items = 1
        for d in shape:
            items *= d
        return items <= XLA_ITEMS

    @property
    def sorter(self):
        """The preset's frozen sorter, loaded on first access."""
        if self._sorter is None:
            self._sorter = _shared_sorter(self.preset, self.smooth_width)
        return self._sorter

    def build(self, input_shape=None):
        # Sublayers are added before the layer is built (Keras locks them).
        self.sorter  # noqa: B018 (loads it)
        super().build(input_shape)

    def __repr__(self):
        width = ""
        if self.smooth_width is not None:
            width = f", smooth_width={self.smooth_width!r}"
        return f"PresetRanker({self.preset!r}{width})"

    def get_config(self):
        return {
            "name": self.preset,
            "smooth_width": self.smooth_width,
            "sha256": files.weights_sha256(self.preset),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        recorded = config.pop("sha256", None)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        ranker = cls(**config)
        installed = files.weights_sha256(ranker.preset)
        if recorded is not None and recorded != installed:
            raise ValueError(
                f"The weights of preset '{ranker.preset}' changed since this "
                f"ranker was saved: saved with sha256 {recorded}, installed "
                f"{installed}. Install the keras_sodeep version that saved "
                "it, or load the model with `keras.saving.load_model(path, "
                "compile=False)` and compile it again with the ranker you "
                f"want (e.g. {ranker!r}, today's weights)."
            )
        return ranker
