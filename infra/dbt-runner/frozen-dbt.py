"""dbt's own command line, with what importing dbt built frozen out of the garbage collector.

    python infra/dbt-runner/frozen-dbt.py ARGS     (the Python that dbt is installed in)

does what `dbt ARGS` does: the same entry point, output (it calls itself `dbt`) and exit
codes. The scheduled build
(scheduled-build.sh) and the `cafe` commands run dbt through it.

Why: importing dbt leaves about 130,000 objects (its classes, mashumaro's generated code,
Jinja's and agate's tables) that live as long as the process. Python's collector walks
every one of them in each full collection, while it holds the interpreter's lock that every
dbt thread needs. `gc.freeze()` moves them into a generation that no collection walks;
whatever dbt creates afterwards is collected as before. Measured at 10 branches x 181 days
on the 2-core development machine: a daily build with nothing new 5.5 s -> 4.8 s (8 runs
each), a full refresh 37.6 s -> 35.3 s; peak memory unchanged (140 MiB).

The file name does not start with `dbt_`: dbt imports every top-level module so named that
it finds on its path (its plugin discovery), and this folder is on the path while it runs.
"""

from __future__ import annotations

import gc
import sys

from dbt.cli.main import cli

if __name__ == "__main__":
    gc.freeze()
    sys.exit(cli(prog_name="dbt"))
