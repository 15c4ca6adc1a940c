"""Runs the checklist on every row of `checklist.CASES`."""

import keras
import numpy as np
import pytest
from checklist import CASES, is_loss
from keras import ops

ROWS = [(case, axis) for case in CASES for axis in case.axes]
IDS = [f"{case.name}-axis{axis}" for case, axis in ROWS]


def lists(case, rng, num_lists=6, n=7):
    """``(y, p)`` of shape ``(num_lists, n)``: lists along the last axis.

    Scores are rounded so that lists hold ties; relevance lists hold a
    positive and a negative.
    """
    p = np.round(rng.normal(size=(num_lists, n)), 1).astype("float32")
    if case.labels == "real":
        y = np.round(rng.normal(size=(num_lists, n)), 1).astype("float32")
    else:
        y = (rng.random((num_lists, n)) < 0.4).astype("float32")
        y[:, 0], y[:, 1] = 1.0, 0.0
    return y, p


def in_layout(x, axis):
    """Lists along the last axis, laid out for `axis`."""
    return x if axis == -1 else np.ascontiguousarray(x.T)


def value(obj, y, p, sample_weight=None):
    if is_loss(obj):
        return float(obj(y, p, sample_weight=sample_weight))
    obj.reset_state()
    obj.update_state(y, p, sample_weight=sample_weight)
    return float(obj.result())


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_unbatched(case, axis, rng):
    y, p = lists(case, rng)
    obj = case.make(axis)
    if axis == -1:
        single, batch = (y[0], p[0]), (y[:1], p[:1])
    else:
        single, batch = (y[0], p[0]), (y[:1].T, p[:1].T)
    np.testing.assert_allclose(
        value(obj, *single), value(obj, *batch), rtol=1e-5
    )


@pytest.mark.parametrize(
    "case, axis",
    [row for row in ROWS if not row[0].pools],
    ids=[i for i, row in zip(IDS, ROWS) if not row[0].pools],
)
def test_batched_is_the_mean_of_its_lists(case, axis, rng):
    y, p = lists(case, rng)
    # A fresh object per call: an axis-0 metric keeps its column count.
    each = [
        value(
            case.make(axis),
            in_layout(y[i : i + 1], axis),
            in_layout(p[i : i + 1], axis),
        )
        for i in range(len(y))
    ]
    batched = value(case.make(axis), in_layout(y, axis), in_layout(p, axis))
    np.testing.assert_allclose(batched, np.mean(each), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "case", [c for c in CASES if len(c.axes) == 2], ids=lambda c: c.name
)
def test_both_axes_agree(case, rng):
    y, p = lists(case, rng)
    np.testing.assert_allclose(
        value(case.make(0), y.T, p.T),
        value(case.make(-1), y, p),
        rtol=1e-5,
    )


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_mask_equals_dropping_the_items(case, axis, rng):
    y, p = lists(case, rng, num_lists=1, n=9)
    mask = np.ones_like(y, dtype=bool)
    mask[0, [3, 6]] = False
    obj = case.make(axis)
    masked = value(
        obj,
        {"labels": in_layout(y, axis), "mask": in_layout(mask, axis)},
        in_layout(p, axis),
    )
    dropped = value(
        obj, in_layout(y[:, mask[0]], axis), in_layout(p[:, mask[0]], axis)
    )
    np.testing.assert_allclose(masked, dropped, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "case", [c for c in CASES if -1 in c.axes], ids=lambda c: c.name
)
def test_sample_weight_weights_lists(case, rng):
    y, p = lists(case, rng)
    w = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0], dtype="float32")
    obj = case.make(-1)
    weighted = value(obj, y, p, sample_weight=w)
    if is_loss(obj):
        per_list = np.asarray(ops.convert_to_numpy(obj.call(y, p)))
        expected = np.sum(w * per_list) / per_list.size
    else:
        each = [value(obj, y[i : i + 1], p[i : i + 1]) for i in range(len(y))]
        expected = np.average(each, weights=w)
    np.testing.assert_allclose(weighted, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_ties_and_item_order_do_not_matter(case, axis, rng):
    y, p = lists(case, rng)
    p[:, 2] = p[:, 3]  # ties in every list
    order = rng.permutation(y.shape[-1])
    obj = case.make(axis)
    np.testing.assert_allclose(
        value(obj, in_layout(y, axis), in_layout(p, axis)),
        value(obj, in_layout(y[:, order], axis), in_layout(p[:, order], axis)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_bad_input_raises(case, axis, rng):
    y, p = lists(case, rng)
    obj = case.make(axis)
    with pytest.raises(ValueError, match="shape"):
        value(obj, y[:, :-1], p)
    with pytest.raises(ValueError, match="labels"):
        value(obj, {"target": y}, p)


def _model_and_data(case, axis, rng):
    """A tiny model whose outputs are lists along `axis`, and its data."""
    y, _ = lists(case, rng, num_lists=8, n=6)
    x = rng.normal(size=(in_layout(y, axis).shape[0], 3)).astype("float32")
    target = in_layout(y, axis)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(target.shape[-1])]
    )
    return model, x, target


def _compile(model, obj):
    if is_loss(obj):
        model.compile("sgd", loss=obj)
    else:
        model.compile("sgd", loss="mse", metrics=[obj])


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_fit_evaluate_and_keras_round_trip(case, axis, rng, tmp_path):
    model, x, target = _model_and_data(case, axis, rng)
    _compile(model, case.make(axis))
    batch = len(x)
    history = model.fit(x, target, batch_size=batch, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    before = model.evaluate(x, target, batch_size=batch, verbose=0)
    assert np.all(np.isfinite(before))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    after = restored.evaluate(x, target, batch_size=batch, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5)


@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_get_config_round_trip(case, axis):
    obj = case.make(axis)
    config = obj.get_config()
    restored = type(obj).from_config(config)
    assert restored.get_config() == config
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(obj)
    )
    assert type(again) is type(obj) and again.get_config() == config


def _padded(case, axis, rng):
    """Padded inputs, per-item weights and the value of the same lists
    unpadded (each list alone, or the kept samples along axis 0)."""
    y, p = lists(case, rng, num_lists=6, n=9)
    junk_label = 1.0 if case.labels == "relevance" else 1e3
    if axis == -1:
        lengths = np.array([9, 5, 7, 3, 9, 6])
        w = (np.arange(9)[None] < lengths[:, None]).astype("float32")
        if case.pools:
            expected = value(case.make(axis), {"labels": y, "mask": w > 0}, p)
        else:
            expected = np.mean(
                [
                    value(case.make(axis), y[i : i + 1, :m], p[i : i + 1, :m])
                    for i, m in enumerate(lengths)
                ]
            )
        y = np.where(w > 0, y, junk_label).astype("float32")
        p = np.where(w > 0, p, 1e3).astype("float32")
        return y, p, w, expected
    # Along axis 0 the batch is the list: samples of weight 0 are dropped.
    y, p = y.T, p.T
    keep = np.array([1, 1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)
    expected = value(case.make(axis), y[keep], p[keep])
    y = np.where(keep[:, None], y, junk_label).astype("float32")
    p = np.where(keep[:, None], p, 1e3).astype("float32")
    return y, p, keep.astype("float32"), expected


@pytest.mark.backend
@pytest.mark.parametrize("case, axis", ROWS, ids=IDS)
def test_padded_lists_in_fit_equal_the_lists_unpadded(case, axis, rng):
    y, p, w, expected = _padded(case, axis, rng)
    obj = case.make(axis)
    keras.utils.set_random_seed(0)
    # Starts as the identity: the model's outputs are `p`.
    model = keras.Sequential(
        [
            keras.Input(p.shape[1:]),
            keras.layers.Dense(
                p.shape[-1], use_bias=False, kernel_initializer="identity"
            ),
        ]
    )
    if is_loss(obj):
        model.compile("sgd", loss=obj)
    else:
        # Keras gives sample weights to `weighted_metrics` only, and its
        # "mse" averages over items first: a per-item loss instead.
        def per_item(t, q):
            return ops.square(q - ops.where(t < 1e3, t, 0.0))

        model.compile(
            "sgd",
            loss="mse" if axis == 0 else per_item,
            weighted_metrics=[obj],
        )
    got = model.evaluate(p, y, sample_weight=w, batch_size=len(p), verbose=0)
    got = got if is_loss(obj) else got[1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    history = model.fit(
        p, y, sample_weight=w, batch_size=len(p), epochs=1, verbose=0
    )
    if is_loss(obj):
        assert np.all(np.isfinite(history.history["loss"]))
