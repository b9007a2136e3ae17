"""Execute the course's notebooks, two at a time where they do not depend on each other:
``make run`` calls

    python -m helpers.run [--jobs N] notebooks/NN_name.ipynb [...]

Each notebook is executed in place by ``jupyter nbconvert`` and then :func:`helpers.strip.strip`.
A notebook starts only once every notebook it reads from has finished (:data:`NEEDS`), so it
computes the same numbers as in a one-by-one run, whatever the timing; notebooks that need nothing
from each other run side by side (``--jobs``, default 2). Among the notebooks ready to start, the
one with the longest chain of work behind it goes first (:data:`ORDER`). A failed notebook stops
those that need it; the others still run, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

# What each notebook reads that another one writes (by number). Anything else it needs, it
# computes itself or reads from the repository.
NEEDS = {
    "02": ["01"],  # notebook 01's selection of samples
    "03": ["01"],  # the selection; its standard-scene maps go to the cache for 05
    "04": ["01"],  # the selection; its AttnLRP maps go to the cache for 05
    "05": ["01", "03", "04"],  # reads the maps 03 and 04 cached
    "06": ["01"],  # 01's predictions of the standard scenes; its maps go to a cache of its own
    "07": [],  # nothing: its own data set and model
}
# Start order among the notebooks ready to start: the longest chain of work behind it first
# (measured offline at full size: 04 then 05 are the longest, 02 the shortest).
ORDER = ["01", "04", "03", "05", "06", "07", "02"]


def number(notebook) -> str:
    """``"04"`` for ``notebooks/04_lrp_gamma.ipynb``."""
    match = re.match(r"(\d+)_", Path(notebook).name)
    if not match:
        raise ValueError(f"{notebook}: a course notebook's name starts with its number, e.g. 04_name.ipynb")
    return match.group(1)


def schedule(notebooks: list, execute: Callable[[str], bool], jobs: int = 2,
             needs: dict | None = None, order: list | None = None, log=print) -> bool:
    """Run ``execute(notebook)`` for every notebook, at most ``jobs`` at a time, each after the
    notebooks it needs (among ``notebooks``; ``needs`` defaults to :data:`NEEDS`). Returns True
    when all succeeded. With ``jobs=1`` the notebooks run in the order given."""
    needs = NEEDS if needs is None else needs
    order = ORDER if order is None else order
    by_number = {number(nb): nb for nb in notebooks}
    rank = {n: (order.index(n) if n in order and jobs > 1 else len(order), i)
            for i, n in enumerate(by_number)}
    pending = sorted(by_number, key=rank.get)
    done, failed, running = set(), set(), {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for n in list(pending):
                required = [m for m in needs.get(n, []) if m in by_number]
                if any(m in failed for m in required):
                    pending.remove(n)
                    failed.add(n)
                    log(f"== {by_number[n]}: not run, it needs {', '.join(sorted(set(required) & failed))}")
                elif len(running) < jobs and all(m in done for m in required):
                    pending.remove(n)
                    running[pool.submit(execute, by_number[n])] = n
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                n = running.pop(future)
                (done if future.result() else failed).add(n)
    for n in pending:  # only when NEEDS has a cycle
        log(f"== {by_number[n]}: not run, its needs ({', '.join(needs[n])}) never finished")
    return not failed and not pending


def execute_notebook(notebook: str, env: dict | None = None) -> bool:
    """Execute ``notebook`` in place at full size (``COURSE_SCALE=full``), then strip it."""
    from .strip import strip

    start = time.monotonic()
    print(f"== {notebook}", flush=True)
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
               "--log-level=WARN", "--ExecutePreprocessor.timeout=-1",
               "--ExecutePreprocessor.record_timing=False", "--ExecutePreprocessor.store_widget_state=False",
               notebook]
    result = subprocess.run(command, env={**os.environ, "COURSE_SCALE": "full", **(env or {})})
    if result.returncode != 0:
        print(f"== {notebook} FAILED (exit status {result.returncode})", flush=True)
        return False
    strip(notebook)
    print(f"== {notebook} done in {time.monotonic() - start:.0f} s", flush=True)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2)")
    args = parser.parse_args(argv)
    # Side by side, OpenMP's busy wait would have each notebook's threads spin while the other's
    # hold the cores (a forward pass took 2.7x longer in each of two processes); waiting passively
    # costs ~3 % alone.
    env = {"OMP_WAIT_POLICY": "PASSIVE"} if args.jobs > 1 else {}
    start = time.monotonic()
    ok = schedule(args.notebooks, lambda nb: execute_notebook(nb, env), jobs=args.jobs)
    print(f"== {len(args.notebooks)} notebooks, {args.jobs} at a time: "
          f"{'done' if ok else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
