"""The shape of every notebook (CONTRIBUTING.md), checked without executing anything:

- a ``.py`` twin (jupytext py:percent) with the same cells;
- first code cell = ``helpers.colab.BOOTSTRAP``; second code cell tagged ``parameters`` and
  assigning ``WORLD`` and ``CI``;
- a ``# NN · Title``, *What you will learn*, *Summary* and *Exercises*;
- every ``save(fig, "...")`` names its figure after the notebook's number;
- the saved outputs do not leak this machine's paths;
- the saved outputs are free of run-to-run noise: no progress bars (tqdm text or widgets), no
  widget state, no execution timestamps, no printed timings; so a re-run that computes the same
  numbers changes no committed byte (``make run`` turns these off);
- the committed figures and executed notebooks weigh at most 12 MB together.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from helpers.colab import BOOTSTRAP

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def test_every_py_twin_has_its_notebook():
    twins = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    lonely = [p.name for p in twins if not p.with_suffix(".ipynb").exists()]
    assert not lonely, f"{lonely} have no .ipynb: run `make sync` (jupytext --sync)"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _markdown(nb):
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def test_py_twin_has_the_same_cells(notebook):
    path, nb = notebook
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} is missing: run `make sync`"
    paired = jupytext.read(twin)
    cells = [(c.cell_type, c.source.strip()) for c in nb.cells]
    twin_cells = [(c.cell_type, c.source.strip()) for c in paired.cells]
    assert twin_cells == cells, f"{path.name} and {twin.name} differ: run `make sync`"
    tags = [c.metadata.get("tags", []) for c in _code_cells(paired)]
    assert tags == [c.metadata.get("tags", []) for c in _code_cells(nb)], "cell tags differ"


def test_first_code_cell_is_the_bootstrap(notebook):
    _, nb = notebook
    assert _code_cells(nb)[0].source == BOOTSTRAP, "run `make sync` to rewrite the bootstrap cell"


def test_second_code_cell_is_parameters_with_world_and_ci(notebook):
    _, nb = notebook
    cell = _code_cells(nb)[1]
    assert "parameters" in cell.metadata.get("tags", []), "tag the second code cell `parameters`"
    assigned = {target.id for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    assert {"WORLD", "CI", "SEED", "DEVICE"} <= assigned, f"parameters cell assigns only {assigned}"
    assert "COURSE_WORLD" in cell.source and "COURSE_SCALE" in cell.source


def test_title_learning_goals_summary_and_exercises(notebook):
    path, nb = notebook
    first = nb.cells[0]
    number = path.name[:2]
    assert first.cell_type == "markdown" and re.match(rf"# {number} · \S", first.source), \
        f"the first cell must be a markdown title '# {number} · Title'"
    text = _markdown(nb)
    for heading in ("What you will learn", "Summary", "Exercises"):
        assert re.search(rf"^(#+ .*|\*\*?){heading}", text, re.M | re.I), \
            f"no '{heading}' heading (or bold line)"
    exercises = text[re.search(r"^#+ .*Exercises", text, re.M | re.I).end():]
    assert 2 <= len(re.findall(r"^\s*(?:\d+\.|[-*]) ", exercises, re.M)) <= 6, "give 2-4 exercises"


def _saved_figure_names(source: str):
    """The name argument of every ``save(...)`` / ``viz.save(...)`` call: its literal prefix, or
    None when it is not a (format) string literal."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not (isinstance(func, ast.Name) and func.id == "save"
                or isinstance(func, ast.Attribute) and func.attr == "save"
                and isinstance(func.value, ast.Name) and func.value.id == "viz"):
            continue
        name = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "name"), None)
        if isinstance(name, ast.JoinedStr):
            name = name.values[0] if name.values else None
        yield name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else None


def test_figures_are_named_after_the_notebook(notebook):
    path, nb = notebook
    names = [n for cell in _code_cells(nb) for n in _saved_figure_names(cell.source)]
    assert names, f"{path.name} saves no figure with helpers.viz.save"
    for name in names:
        assert name is not None and name.startswith(path.name[:3]), \
            f"figure name {name!r} in {path.name} must be a literal starting with {path.name[:3]!r}"


def test_outputs_do_not_leak_machine_paths(notebook):
    path, _ = notebook
    text = path.read_text()
    for private in {str(ROOT), sys.prefix, str(Path.home())} - {"/", ""}:
        assert private not in text, f"{path.name} outputs contain a local path; clear or rerun"


def _text_outputs(nb):
    """``(cell number, text)`` of every textual output: streams, plain text, HTML, markdown."""
    for number, cell in enumerate(_code_cells(nb)):
        for output in cell.get("outputs", []):
            if "text" in output:
                yield number, output["text"]
            for kind in ("text/plain", "text/html", "text/markdown"):
                if kind in output.get("data", {}):
                    yield number, output["data"][kind]


# tqdm's bar ("  0%|          | 0/72 [00:00<?, ?it/s]"), its counter and its rates
PROGRESS_BAR = re.compile(r"\d+%\||\|\s*\d+/\d+\s*\[|\b(?:it|s|batch|B)/(?:s|it)\b")
# wall-clock times ("Wall time: 2.1 s", "took 12.3 ms", "CPU times"). Costs in forward passes
# ("1.8× a forward pass") may appear: notebook 05 reads them from make bench's committed table.
TIMING = re.compile(r"\b(?:Wall time|CPU times)\b|\b\d+(?:\.\d+)? ?(?:ms|µs|s|sec|seconds|min|minutes)\b")


def test_outputs_have_no_progress_bars(notebook):
    path, nb = notebook
    widgets = [number for number, cell in enumerate(_code_cells(nb)) for output in cell.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
    assert not widgets, f"{path.name}: widget outputs (progress bars) in code cells {widgets}"
    bars = [(number, PROGRESS_BAR.search(text).group()) for number, text in _text_outputs(nb)
            if PROGRESS_BAR.search(text)]
    assert not bars, f"{path.name}: progress bars in the outputs (code cell, text): {bars}"


def test_no_widget_state_or_cell_timings(notebook):
    path, nb = notebook
    stored = "widgets" in nb.metadata
    assert not stored, f"{path.name} stores widget state (metadata.widgets)"
    timed = [number for number, cell in enumerate(nb.cells)
             if {"execution", "ExecuteTime"} & set(cell.metadata)]
    assert not timed, f"{path.name}: execution timestamps in the metadata of cells {timed}"


def test_streams_are_not_split_by_flush_timing(notebook):
    """A loop that prints while it computes reaches the notebook in as many pieces as the kernel
    happened to flush; helpers.strip (make run) joins them, so a re-run changes no byte."""
    path, nb = notebook
    split = [number for number, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for first, second in zip(cell.outputs, cell.outputs[1:])
             if first.get("output_type") == second.get("output_type") == "stream"
             and first.get("name") == second.get("name")]
    assert not split, f"{path.name}: consecutive stream outputs in cells {split} (run helpers.strip)"


def test_strip_joins_split_streams_and_nothing_else(tmp_path):
    from helpers.strip import strip

    cell = nbformat.v4.new_code_cell("print(1); print(2)", metadata={"execution": {"iopub.status.busy": "2026-12-03T12:00:00Z"}}, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "3"}, execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text="c\n")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}}), path)
    strip(path)
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata and "execution" not in nb.cells[0].metadata
    assert [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs] == [
        ("stream", "stdout", "a\nb\n"), ("stream", "stderr", "warning\n"),
        ("execute_result", None, None), ("stream", "stdout", "c\n")]


def test_outputs_print_no_timings(notebook):
    path, nb = notebook
    timings = [(number, TIMING.search(text).group()) for number, text in _text_outputs(nb)
               if TIMING.search(text)]
    assert not timings, f"{path.name}: timings in the outputs change every run (code cell, text): {timings}"


MAX_COMMITTED_MB = 12


def _committed_outputs():
    """The committed figures (``git ls-files figures``) and executed notebooks, as paths."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "figures", "notebooks"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.split("\0")
        files = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what is there
        files = [p for p in (ROOT / "figures").rglob("*") if not {"_ci", "_tmp"} & set(p.parts)]
        files += list((ROOT / "notebooks").glob("*"))
    return [p for p in files if p.is_file() and (p.suffix == ".ipynb" or p.relative_to(ROOT).parts[0] == "figures")]


def test_committed_figures_and_notebooks_weigh_at_most_12_mb():
    files = _committed_outputs()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".png" for p in files)
    total = sum(p.stat().st_size for p in files)
    heaviest = sorted(files, key=lambda p: p.stat().st_size, reverse=True)[:5]
    assert total <= MAX_COMMITTED_MB * 10**6, (
        f"committed figures + executed notebooks weigh {total / 10**6:.1f} MB (at most {MAX_COMMITTED_MB} MB); "
        f"heaviest: {[(str(p.relative_to(ROOT)), round(p.stat().st_size / 10**6, 2)) for p in heaviest]}")
