"""Concord's command line from a checkout: ``python main.py --config=ALG --env-config=ENV with key=value ...``.

A thin shim over ``concord.cli.main`` (installed as the ``concord`` console script by ``pip install -e .``):
it puts ``src/`` on ``sys.path`` first, so that it also works without installing the package.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from concord.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
