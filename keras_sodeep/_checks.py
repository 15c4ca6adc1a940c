"""Argument and shape checks shared by the modules of the package.

Each check raises a ``ValueError`` (or ``TypeError``) that names the
argument, says what was expected and shows what was received. Like
``keras_sodeep.ranking``, this module imports no other module of the
package.
"""

import math
import numbers

import keras
from keras import ops


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name, minimum=1):
    """Returns ``int(value)`` if it is an int >= ``minimum``, else raises."""
    if not _is_int(value) or value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(
            f"`{name}` should be {expected}. Received: {name}={value!r}"
        )
    return int(value)


def check_seq_len(seq_len):
    """``(min, max)`` from a positive int or a ``(min, max)`` pair of ints."""
    if _is_int(seq_len) and seq_len >= 1:
        return int(seq_len), int(seq_len)
    if (
        isinstance(seq_len, (list, tuple))
        and len(seq_len) == 2
        and all(_is_int(v) for v in seq_len)
        and 1 <= seq_len[0] <= seq_len[1]
    ):
        return int(seq_len[0]), int(seq_len[1])
    raise ValueError(
        "`seq_len` should be a positive int or a (min, max) pair of ints "
        f"with 1 <= min <= max. Received: seq_len={seq_len!r}"
    )


def check_list_axis(axis):
    """``axis`` if it is 0 (the batch is the list) or -1 (rows are lists)."""
    if isinstance(axis, bool) or axis not in (0, -1):
        raise ValueError(
            "`axis` should be 0 (the batch is the list) or -1 (each row "
            f"is a list). Received: axis={axis!r}"
        )
    return int(axis)


def check_float(value, name, positive=True):
    """``float(value)`` for a finite positive (or non-negative) number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        expected = "a positive" if positive else "a non-negative"
        expected += " finite float"
        raise ValueError(
            f"`{name}` should be {expected}. Received: {name}={value}"
        )
    return float(value)


def parse_positive_number(text):
    """``float(text)`` if the text is a finite number > 0, else ``None``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if 0 < value < math.inf else None


def config_repr(obj, config, hidden, attributes=False):
    """``ClassName(key=value, ...)`` of a config, keys in ``hidden`` left
    out. With ``attributes``, a value is the attribute of that name where
    ``obj`` has one (an object itself, not its serialized form); a
    serialized object is shown by its class."""
    shown = []
    for key, value in config.items():
        if key in hidden:
            continue
        if attributes:
            value = getattr(obj, key, value)
        if isinstance(value, dict) and "class_name" in value:
            text = f"{value['class_name']}(...)"
        else:
            text = repr(value)
        shown.append(f"{key}={text}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def check_bool(value, name):
    """Returns ``value`` if it is a bool, else raises a ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` should be a bool. Received: {name}={value!r}"
        )
    return value


def check_ks(k):
    """A positive int or a non-empty sequence of them, as a tuple of ints."""
    if _is_int(k):
        return (check_int(k, "k"),)
    try:
        ks = tuple(k)
    except TypeError:
        ks = ()
    if not ks or not all(_is_int(v) and v >= 1 for v in ks):
        raise ValueError(
            "`k` should be a positive int or a non-empty sequence of "
            f"positive ints. Received: k={k!r}"
        )
    return tuple(int(v) for v in ks)


def same_shape(a, b):
    """Whether two static shapes agree (``None`` matches any size)."""
    a, b = tuple(a), tuple(b)
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def unpack_y_true(y_true):
    """``(labels, mask)`` from a tensor or a ``{"labels", "mask"}`` dict."""
    if isinstance(y_true, dict):
        unknown = set(y_true) - {"labels", "mask"}
        if "labels" not in y_true or unknown:
            raise ValueError(
                "`y_true` should be a tensor or a dict with the keys 'labels' "
                f"and, optionally, 'mask'. Received keys: {sorted(y_true)}"
            )
        return y_true["labels"], y_true.get("mask")
    return y_true, None


def reject_ragged(x, name):
    """Raises a ``ValueError`` naming the padded forms for a ragged tensor.

    Lists of different lengths are padded to one length; the padding is
    marked by a mask (``{"labels": ..., "mask": ...}``), by labels < 0
    (relevance labels) or by a per-item ``sample_weight`` of 0.
    """
    if type(x).__name__ in ("RaggedTensor", "RaggedTensorValue"):
        raise ValueError(
            f"`{name}` should be a dense tensor: ragged tensors are not "
            "supported. Pad the lists to one length (e.g. "
            "`x.to_tensor()`) and mark the padding with a mask (y_true = "
            '{"labels": ..., "mask": ...}), labels < 0 (relevance labels) '
            "or a per-item sample_weight of 0. Received: a "
            f"{type(x).__name__}"
        )


def as_tensor(x, dtype=None):
    """``ops.convert_to_tensor(x, dtype)``, a ``tf.Variable`` included.

    ``ops.convert_to_tensor`` returns a ``tf.Variable`` of the right dtype
    unchanged, and a ``tf.Variable`` lacks the ``ndim`` that ``keras.ops``
    functions read; it is copied into a tensor.
    """
    reject_ragged(x, "input")
    x = ops.convert_to_tensor(x, dtype=dtype)
    if not hasattr(x, "ndim"):
        x = ops.copy(x)
    return x


def is_traced(x):
    """Whether ``x`` is a symbolic value of a function being compiled (a
    ``tf.function`` graph, a JAX trace) rather than one computed eagerly.
    PyTorch runs eagerly: always ``False``."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    return False
