"""A griffe extension for the API pages: doctest blocks as code blocks.

The package's docstrings put their ``>>>`` examples after ``Example:``
without indenting them (so that pytest's ``--doctest-modules`` and help()
read them as written). Markdown would render such lines as a blockquote
and read ``[1.0, 2.0]`` in their outputs as links; this extension wraps
each ``>>>`` paragraph in a ``pycon`` code fence when the docs are built.
The library's docstrings are not changed.
"""

import griffe


def fence_doctests(text):
    """Wraps each paragraph that starts with ``>>>`` in a pycon fence."""
    out = []
    inside = False
    fence_open = False
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fence_open = not fence_open
        if not inside and not fence_open and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(indent + "```pycon")
            inside = True
        elif inside and not stripped:
            out.append(indent + "```")
            inside = False
        out.append(line)
    if inside:
        out.append(indent + "```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest paragraphs of every loaded docstring."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
