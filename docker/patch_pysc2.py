"""Make pysc2 4.0.0 importable on Python 3.11+ without changing what it computes.

``pysc2/lib/colors.py`` builds its palettes at import time with ``random.shuffle(palette, lambda: 0.5)``; Python
3.11 removed ``shuffle``'s second argument, so importing pysc2's features (which SMAC does) raises TypeError. The
call is replaced by the same fixed permutation written out: Python 3.10's Fisher-Yates with random() = 0.5 swaps
position i with floor(0.5 * (i + 1)). Run as ``python patch_pysc2.py [path/to/colors.py]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

OLD = "random.shuffle(palette, lambda: 0.5)"
NEW = "for i in reversed(range(1, len(palette))): j = (i + 1) // 2; palette[i], palette[j] = palette[j], palette[i]"


def patch(source: str) -> str:
    """The patched text of colors.py; an unknown version of the file is an error, never silently skipped."""
    if OLD not in source:
        raise SystemExit(f"pysc2 colors.py does not contain '{OLD}': check the pinned pysc2 version")
    return source.replace(OLD, NEW)


def main(argv: list[str]) -> None:
    if argv:
        path = Path(argv[0])
    else:
        import importlib.util

        path = Path(importlib.util.find_spec("pysc2").submodule_search_locations[0]) / "lib" / "colors.py"
    path.write_text(patch(path.read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
