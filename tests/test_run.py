"""helpers.run: notebooks side by side, each only after those it reads from."""
import threading
import time
from pathlib import Path

import pytest

from helpers import run

NOTEBOOKS = [f"notebooks/{n}_x.ipynb" for n in ("01", "02", "03", "04", "05", "06", "07")]


class Recorder:
    """An ``execute`` that records when each notebook starts and ends, and how many run at once."""

    def __init__(self, seconds=None, failing=()):
        self.seconds, self.failing = seconds or {}, set(failing)
        self.events, self.lock, self.running, self.most = [], threading.Lock(), 0, 0

    def __call__(self, notebook):
        n = run.number(notebook)
        with self.lock:
            self.events.append(("start", n))
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds.get(n, 0.01))
        with self.lock:
            self.events.append(("end", n))
            self.running -= 1
        return n not in self.failing

    def position(self, kind, n):
        return self.events.index((kind, n))


def test_every_notebook_starts_after_the_ones_it_needs_and_two_run_at_once():
    recorder = Recorder(seconds={"04": 0.2, "07": 0.15})
    assert run.schedule(NOTEBOOKS, recorder, jobs=2, log=lambda *a: None)
    assert sorted(n for kind, n in recorder.events if kind == "start") == [run.number(nb) for nb in NOTEBOOKS]
    for n, required in run.NEEDS.items():
        for m in required:
            assert recorder.position("end", m) < recorder.position("start", n), (m, n)
    assert recorder.most == 2


def test_one_job_runs_them_in_the_given_order_one_at_a_time():
    recorder = Recorder()
    assert run.schedule(NOTEBOOKS, recorder, jobs=1, log=lambda *a: None)
    assert [n for kind, n in recorder.events if kind == "start"] == ["01", "02", "03", "04", "05", "06", "07"]
    assert recorder.most == 1


def test_a_failure_stops_what_needs_it_and_the_rest_still_runs():
    recorder, said = Recorder(failing={"03"}), []
    assert not run.schedule(NOTEBOOKS, recorder, jobs=2, log=said.append)
    started = {n for kind, n in recorder.events if kind == "start"}
    assert "05" not in started and {"01", "02", "03", "04", "06", "07"} <= started
    assert any("05" in line and "03" in line for line in said)


def test_notebooks_missing_from_the_run_are_not_waited_for():
    recorder = Recorder()
    assert run.schedule(["notebooks/05_x.ipynb"], recorder, jobs=2, log=lambda *a: None)
    assert recorder.events == [("start", "05"), ("end", "05")]


def test_needs_name_every_course_notebook_and_only_earlier_ones():
    course = sorted(run.number(p) for p in Path(__file__).parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert sorted(run.NEEDS) == course[1:] and sorted(run.ORDER) == course
    assert all(m < n for n, required in run.NEEDS.items() for m in required)


def test_a_name_without_its_number_is_refused():
    with pytest.raises(ValueError, match="starts with its number"):
        run.number("notebooks/intro.ipynb")
