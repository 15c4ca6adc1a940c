"""Embeddings as lists: each sample a query ranking the others by cosine.

A batch of embeddings ``(B, D)`` with integer labels ``(B,)`` becomes
``B`` lists: row ``q`` holds the cosine similarities of sample ``q`` to the
gallery (the batch itself, without ``q``; optionally more items, such as a
cross-batch memory or the other replicas' samples), and the gallery items
with the label of ``q`` are relevant. Labels < 0 and ``False`` mask
entries pad: a padded sample is neither a query nor a gallery item.
"""

from keras import ops

from keras_sodeep._checks import as_tensor


def unit_embeddings(embeddings):
    """Embeddings scaled to unit L2 norm (a zero row stays zero)."""
    return ops.normalize(embeddings, axis=-1, order=2)


def embedding_labels(labels, mask=None):
    """Flat integer labels of a batch of embeddings, and which ones count.

    An embedding counts when its label is >= 0 (negative labels pad) and
    its ``mask`` entry, if given, is true.
    """
    labels = ops.reshape(labels, (-1,))
    valid = labels >= 0
    if mask is not None:
        mask = ops.reshape(as_tensor(mask), (-1,))
        valid = ops.logical_and(valid, ops.not_equal(mask, 0))
    return labels, valid


def similarity_lists(query, gallery, offset=0):
    """``(relevance, scores, valid)`` of queries against a gallery.

    Args:
        query: ``(units, labels, valid)`` of ``b`` queries: unit-norm
            embeddings ``(b, D)``, labels ``(b,)``, bool ``(b,)``.
        gallery: the same for ``M`` gallery items.
        offset: int (or scalar tensor): query ``q`` is gallery item
            ``q + offset``, left out of its own list.

    Returns:
        Three ``(b, M)`` tensors: relevance (1.0 where the labels agree),
        dot products, and the pairs that take part (both sides valid, not
        the query itself).
    """
    units, labels, valid = query
    gallery_units, gallery_labels, gallery_valid = gallery
    scores = ops.matmul(units, ops.transpose(gallery_units))
    gallery_labels = ops.cast(gallery_labels, labels.dtype)
    relevance = ops.cast(
        ops.equal(
            ops.expand_dims(labels, 1), ops.expand_dims(gallery_labels, 0)
        ),
        scores.dtype,
    )
    rows = ops.arange(ops.shape(units)[0]) + offset
    columns = ops.arange(ops.shape(gallery_units)[0])
    not_self = ops.not_equal(
        ops.expand_dims(rows, 1), ops.expand_dims(columns, 0)
    )
    pair_valid = ops.logical_and(
        ops.expand_dims(valid, 1), ops.expand_dims(gallery_valid, 0)
    )
    return relevance, scores, ops.logical_and(pair_valid, not_self)


def embedding_lists(labels, embeddings, mask=None, reference=None):
    """Cosine-similarity lists of a batch of embeddings, self-pairs out.

    Returns ``(relevance, scores, valid)`` of shape ``(B, B)``: row ``q``
    ranks the other samples by cosine similarity to sample ``q``; the
    samples with its label are relevant; labels < 0 and ``False`` mask
    entries mark padding. A padded sample reaches no value and no gradient,
    whatever its embedding holds.

    ``reference``, optional: ``(unit, labels, valid)`` of ``R`` more
    gallery items (unit-norm embeddings ``(R, D)``, labels ``(R,)``, bool
    ``(R,)``), such as a cross-batch memory; they become ``R`` more columns,
    ``(B, B + R)`` in all. They are gallery items only, never queries.
    """
    labels, valid = embedding_labels(labels, mask)
    # Padded embeddings are replaced before any arithmetic: a NaN there
    # would otherwise reach every gradient through the matmul below.
    embeddings = ops.where(ops.expand_dims(valid, -1), embeddings, 1.0)
    query = (unit_embeddings(embeddings), labels, valid)
    gallery = query
    if reference is not None:
        ref_unit, ref_labels, ref_valid = reference
        ref_labels = ops.cast(ops.reshape(ref_labels, (-1,)), labels.dtype)
        gallery = (
            ops.concatenate([query[0], ops.cast(ref_unit, query[0].dtype)], 0),
            ops.concatenate([labels, ref_labels], 0),
            ops.concatenate([valid, ref_valid], 0),
        )
    return similarity_lists(query, gallery)
