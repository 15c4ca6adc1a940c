"""The complete Python examples of the README and the docs run as written.

A block counts as complete when it starts with an import; each runs in a
fresh interpreter (one of them configures TensorFlow's devices before
anything else), and must exit cleanly. A block found in several files runs
once.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _complete_blocks(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if b.startswith("import ")]


README_BLOCKS = _complete_blocks(os.path.join(ROOT, "README.md"))
DOCS = sorted(
    glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
)
BLOCKS = list(
    dict.fromkeys(
        README_BLOCKS + [b for path in DOCS for b in _complete_blocks(path)]
    )
)


def test_readme_has_complete_examples():
    assert len(README_BLOCKS) >= 2


def test_docs_have_complete_examples():
    assert len(BLOCKS) > len(README_BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
