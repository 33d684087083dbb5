"""Import first in every bench script: puts the project, not bench/, on sys.path.

`python bench/booking.py` puts bench/ first on sys.path, where the sibling
bench/scheduler.py and bench/monitoring.py would shadow the `scheduler` and
`monitoring` packages. Removing bench/ and putting the project's root in its
place lets the scripts import the product, `harness` and `bench.shared`."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
