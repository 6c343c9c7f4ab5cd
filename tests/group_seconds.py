"""Seconds each test group took, for handing the groups to pytest-xdist's workers longest first.

A run keeps its own figures in pytest's cache (`KEY`, tests/conftest.py writes them after a
good parallel run). A fresh clone has none, so the figures of a fresh clone's `make test` on
the 2-core CI machine are kept in the repository (`BASELINE`), as pytest-split keeps its
durations; the cache's own figures win.

    python -m tests.group_seconds    (make test-timings) keeps the cache's figures as the baseline
"""

from __future__ import annotations

import json
from pathlib import Path

KEY = "cafe-elt/xdist-group-seconds"
BASELINE = Path(__file__).with_name("group-seconds.json")
# Where pytest's cache provider stores KEY, from the repository's root.
CACHED = Path(".pytest_cache") / "v" / KEY


def expected(measured: dict[str, float]) -> dict[str, float]:
    """The seconds to order by: the baseline's, overridden by this checkout's own."""
    baseline: dict[str, float] = json.loads(BASELINE.read_text(encoding="utf-8"))
    return {**baseline, **measured}


def main() -> None:
    seconds: dict[str, float] = json.loads(CACHED.read_text(encoding="utf-8"))
    rounded = {group: round(value, 1) for group, value in sorted(seconds.items())}
    BASELINE.write_text(json.dumps(rounded, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
