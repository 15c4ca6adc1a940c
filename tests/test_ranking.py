import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import rankdata

from keras_sodeep.ranking import exact_rank


def masked_rankdata(x, mask):
    """Oracle: scipy ranks of the unmasked items of each last-axis list."""
    out = np.zeros(x.shape, dtype=np.float64)
    flat_x = x.reshape(-1, x.shape[-1])
    flat_m = mask.reshape(-1, x.shape[-1])
    flat_o = out.reshape(-1, x.shape[-1])
    for row, keep, dest in zip(flat_x, flat_m, flat_o):
        dest[keep] = rankdata(-row[keep], method="average")
    return out


@pytest.mark.backend
def test_small_hand_case():
    ranks = exact_rank(np.array([1.0, 3.0, 3.0, 2.0, 3.0]))
    np.testing.assert_array_equal(ranks, [5.0, 2.0, 2.0, 4.0, 2.0])


@pytest.mark.backend
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_matches_scipy_with_many_ties(rng, axis):
    x = rng.integers(0, 4, size=(3, 5, 9)).astype("float32")
    expected = rankdata(-x, method="average", axis=axis)
    np.testing.assert_array_equal(exact_rank(x, axis=axis), expected)


def test_unbatched_and_continuous(rng):
    x = rng.normal(size=1000).astype("float32")
    np.testing.assert_array_equal(exact_rank(x), rankdata(-x))


@pytest.mark.backend
def test_mask_excludes_items(rng):
    x = rng.integers(0, 3, size=(4, 2, 11)).astype("float32")
    mask = rng.random(x.shape) > 0.4
    np.testing.assert_array_equal(
        exact_rank(x, mask=mask), masked_rankdata(x, mask)
    )


@pytest.mark.backend
def test_mask_along_first_axis(rng):
    x = rng.integers(0, 3, size=(11, 3)).astype("float32")
    mask = rng.random(x.shape) > 0.4
    expected = masked_rankdata(x.T, mask.T).T
    np.testing.assert_array_equal(exact_rank(x, mask=mask, axis=0), expected)


def test_masked_items_do_not_tie_with_infinite_scores():
    x = np.array([-np.inf, 1.0, -np.inf, 0.0], dtype="float32")
    mask = np.array([True, True, False, True])
    np.testing.assert_array_equal(
        exact_rank(x, mask=mask), [3.0, 1.0, 0.0, 2.0]
    )


@pytest.mark.backend
def test_integer_input_and_nan():
    np.testing.assert_array_equal(
        exact_rank(np.array([1, 5, 5])), [3, 1.5, 1.5]
    )
    ranks = np.asarray(exact_rank(np.array([1.0, np.nan, 0.0])))
    assert np.isnan(ranks[1])


def test_no_gradient():
    x = tf.Variable([0.5, -1.0, 2.0])
    with tf.GradientTape() as tape:
        total = keras.ops.sum(exact_rank(x) * x)
    grad = tape.gradient(total, x)
    # Only the explicit `* x` factor carries gradient: d/dx sum(r * x) = r.
    np.testing.assert_array_equal(grad, [2.0, 3.0, 1.0])


def test_graph_and_xla(rng):
    x = rng.integers(0, 5, size=(6, 20)).astype("float32")
    mask = rng.random(x.shape) > 0.3
    fn = tf.function(lambda a, m: exact_rank(a, mask=m), jit_compile=True)
    np.testing.assert_array_equal(fn(x, mask), masked_rankdata(x, mask))


@pytest.mark.backend
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.float32(1.0)}, "at least one dimension"),
        ({"x": np.zeros((2, 3)), "axis": 2}, "`axis` is out of range"),
        ({"x": np.zeros((2, 3)), "mask": np.ones((3,), bool)}, "`mask`"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exact_rank(**kwargs)


def test_bad_axis_type():
    with pytest.raises(TypeError, match="`axis` should be an int"):
        exact_rank(np.zeros(3), axis=1.0)
