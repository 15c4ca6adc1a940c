"""Exact ranks, tie groups and the padding convention of the package."""

import keras
from keras import ops


def _move_axis_last(x, axis):
    axis = axis % len(x.shape)
    if axis == len(x.shape) - 1:
        return x, None
    return ops.moveaxis(x, axis, -1), axis


def _standardize_axis(x, axis, name="axis"):
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"`{name}` should be an int. Received: {name}={axis}")
    rank = len(x.shape)
    if rank == 0:
        raise ValueError(
            "`x` should have at least one dimension to rank along. "
            f"Received: x.shape={tuple(x.shape)}"
        )
    if not -rank <= axis < rank:
        raise ValueError(
            f"`{name}` is out of range for an input of rank {rank}. "
            f"Received: {name}={axis}"
        )
    return axis


def check_mask(mask, x, name="scores"):
    """A boolean mask of the shape of ``x`` (``None`` stays ``None``).

    Non-boolean masks count non-zero entries as ``True``; a mask of another
    shape raises a ``ValueError`` naming ``x`` as ``name``.
    """
    if mask is None:
        return None
    mask = ops.convert_to_tensor(mask)
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(
            f"`mask` should have the shape of `{name}`. Received: "
            f"mask.shape={tuple(mask.shape)}, {name}.shape={tuple(x.shape)}"
        )
    return mask if mask.dtype == "bool" else ops.not_equal(mask, 0)


def exact_rank(x, mask=None, axis=-1):
    """Exact, tie-averaged, descending ranks along an axis.

    The highest score gets rank 1; tied scores share the average of the
    positions they span; masked items are left out of every rank and get
    rank 0. With ``m`` the number of unmasked items of a list:

    ```
    rank_i = 1 + #{j : x_j > x_i} + (#{j != i : x_j == x_i}) / 2
    ```

    which lies in ``[1, m]``. The result has no gradient (ranks are piecewise
    constant). Cost: O(n log n) per list (three sorts).

    Args:
        x: scores, a float tensor of any shape with at least one dimension.
        mask: optional boolean tensor of the shape of ``x``; ``False`` marks
            padding. Defaults to ``None`` (every item counts).
        axis: the axis along which items are ranked. Defaults to ``-1``.

    Returns:
        A float tensor of the shape and float dtype of ``x`` (integer input
        gives float32) with ranks in ``[1, m]`` for
        unmasked items and ``0`` for masked ones. A NaN score gets rank NaN;
        a masked item may hold anything (NaN included): it changes nothing.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import exact_rank
    >>> scores = np.array([0.3, 2.0, 0.3, -1.0])
    >>> np.asarray(exact_rank(scores)).tolist()
    [2.5, 1.0, 2.5, 4.0]
    >>> mask = np.array([True, False, True, True])
    >>> np.asarray(exact_rank(scores, mask=mask)).tolist()
    [1.5, 0.0, 1.5, 3.0]
    """
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, "float32")
    axis = _standardize_axis(x, axis)
    mask = check_mask(mask, x, "x")
    x, moved = _move_axis_last(x, axis)
    if mask is not None and moved is not None:
        mask = ops.moveaxis(mask, moved, -1)
    ranks = _exact_rank_last_axis(ops.stop_gradient(x), mask)
    if moved is not None:
        ranks = ops.moveaxis(ranks, -1, moved)
    return ranks


def sorted_tie_groups(x, mask=None):
    """Orders each last-axis list by decreasing score, with its tie groups.

    Masked items (``mask`` False) go after the others and form groups of
    their own. Returns ``order`` (the sorting permutation, int32) and, for
    each sorted position, ``first`` and ``end``: the sorted positions where
    its tie group starts and ends (exclusive). Nothing here depends on how
    the sort breaks ties. The tie-group helper of ``exact_rank``, the
    metrics and retrieval.
    """
    n = ops.shape(x)[-1]
    positions = ops.broadcast_to(ops.arange(n, dtype="int32"), ops.shape(x))
    # 1. Order the items by decreasing score (ties in any order).
    order = ops.cast(ops.argsort(-x, axis=-1), "int32")
    if mask is not None:
        # 2. Move masked items to the end, keeping the order of the others.
        #    The keys are distinct, so no stable sort is needed.
        valid_sorted = ops.take_along_axis(mask, order, axis=-1)
        key = ops.where(valid_sorted, positions, positions + n)
        order = ops.take_along_axis(
            order, ops.cast(ops.argsort(key, axis=-1), "int32"), axis=-1
        )
    values = ops.take_along_axis(x, order, axis=-1)
    # 3. Tie groups are runs of equal values in sorted order. A new group
    #    starts where the value (or the masked flag) changes.
    changed = ops.not_equal(values[..., 1:], values[..., :-1])
    if mask is not None:
        valid_sorted = ops.take_along_axis(mask, order, axis=-1)
        changed = ops.logical_or(
            changed,
            ops.not_equal(valid_sorted[..., 1:], valid_sorted[..., :-1]),
        )
    starts_group = ops.concatenate(
        [ops.ones_like(values[..., :1], dtype="bool"), changed], axis=-1
    )
    group = ops.cumsum(ops.cast(starts_group, "int32"), axis=-1) - 1
    # 4. The start positions of the groups, in increasing order, then n.
    key = ops.where(starts_group, positions, positions + n)
    group_starts = ops.minimum(ops.sort(key, axis=-1), n)
    group_starts = ops.concatenate(
        [group_starts, ops.full_like(group_starts[..., :1], n)], axis=-1
    )
    first = ops.take_along_axis(group_starts, group, axis=-1)
    end = ops.take_along_axis(group_starts, group + 1, axis=-1)
    return order, first, end


def _exact_rank_last_axis(x, mask):
    dtype = x.dtype
    if mask is not None:
        # Masked items are replaced before the sort: a NaN there would
        # scramble the order of the others.
        x = ops.where(mask, x, ops.zeros_like(x))
    order, first, end = sorted_tie_groups(x, mask)
    # Positions first..end-1 (0-based) average to (first + end + 1) / 2.
    sorted_ranks = (ops.cast(first + end, dtype) + 1.0) / 2.0
    # Back to the original positions.
    inverse = ops.cast(ops.argsort(order, axis=-1), "int32")
    ranks = ops.take_along_axis(sorted_ranks, inverse, axis=-1)
    ranks = ops.where(ops.isnan(x), ops.cast(float("nan"), dtype), ranks)
    if mask is not None:
        ranks = ops.where(mask, ranks, ops.zeros_like(ranks))
    return ranks


def pad_below_minimum(scores, mask=None, length=None):
    """Replaces masked scores, and pads lists, with values below the minimum.

    For lists of shape ``(batch, n)``, with ``m`` unmasked items between
    ``low`` and ``high``, ``gap = (high - low) / (m - 1)`` (1 when they are
    all equal) and ``k`` counting padding values in position order:

    ```
    padding_k = low - k * gap,   k = 1, 2, ...
    ```

    so the unmasked items keep their ranks, the padding sits at the bottom,
    and the list stays an affine image of one built from the unmasked
    items alone. With ``length``, the list is then continued with such
    values up to ``length`` items, or cropped to it. The padding carries no
    gradient. The one padding convention of the package (``SorterRanker``,
    fixed-length sorters with a mask, ``SorterFinetuning``).

    Args:
        scores: float tensor ``(batch, n)``.
        mask: optional boolean tensor of the same shape; ``False`` marks
            the items to replace.
        length: optional int, the list length of the result.

    Returns:
        A tensor ``(batch, n)``, or ``(batch, length)``.
    """
    dtype = scores.dtype
    valid = ops.ones_like(scores, dtype="bool") if mask is None else mask
    stopped = ops.stop_gradient(scores)
    big = ops.cast(float("inf"), dtype)
    low = ops.min(ops.where(valid, stopped, big), axis=-1, keepdims=True)
    high = ops.max(ops.where(valid, stopped, -big), axis=-1, keepdims=True)
    m = ops.sum(ops.cast(valid, dtype), axis=-1, keepdims=True)
    has_items = m > 0
    low = ops.where(has_items, low, ops.zeros_like(low))
    high = ops.where(has_items, high, ops.zeros_like(high))
    spread = high - low
    gap = ops.where(
        spread > 0,
        spread / ops.maximum(m - 1.0, 1.0),
        ops.ones_like(spread),
    )
    pad_index = ops.cumsum(ops.cast(ops.logical_not(valid), dtype), -1)
    filled = ops.where(valid, scores, low - gap * pad_index)
    if length is None:
        return filled
    extra_index = ops.cast(ops.arange(1, length + 1), dtype)
    extra = low - gap * (pad_index[:, -1:] + extra_index)
    padded = ops.concatenate([filled, extra], axis=-1)[:, :length]
    return ops.reshape(padded, (-1, length))
