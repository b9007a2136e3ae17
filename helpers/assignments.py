"""The teaching and grading kit: graded exercises built and graded with otter-grader.

One source per lecture notebook, ``assignments/NN_name.ipynb`` (the otter "master" notebook, paired
with its py:percent twin ``NN_name.py`` that reviewers read), holds the questions, the solutions,
the public and hidden tests and the rubric of the written questions. From it:

- :func:`build` (``make assignments``) runs ``otter assign`` on every master and writes, under
  ``assignments/dist/NN_name/``: ``student/`` (the notebook to hand out, no solutions, no outputs,
  with its public tests in ``student/tests/``, also zipped as ``NN_name-student.zip``) and
  ``autograder/`` (the solution notebook, all tests, and otter's autograder zip — the bundle
  ``otter run`` grades with, and the file Gradescope takes).
- :func:`grade` (``make grade SUBMISSIONS=dir``) grades every handed-in notebook (``.ipynb``, or an
  otter export ``.zip``) of a folder with ``otter run`` — no Docker — into a CSV: one row per
  submission, one column per question (written questions left blank for the teacher).
- :func:`grader_for` is what a student notebook calls to get otter's ``grader``: with the public
  tests next to the notebook (a handed-out folder), built from the course clone when they are not
  there (Colab, where it first installs otter-grader, as otter's own Colab notebooks do), and with
  the hidden tests when ``otter run`` grades.

``python -m helpers.assignments build|grade|questions`` runs these from the command line.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "assignments"
DIST = SOURCES / "dist"
OTTER = "otter-grader==7.0.0"  # the version requirements-dev.txt pins (a test checks they agree)


# ------------------------------------------------------------------------------ the sources
@dataclass(frozen=True)
class Question:
    """One question of an assignment: its otter name, points and whether a person grades it."""

    assignment: str
    name: str
    points: float
    manual: bool


def masters(names=None) -> list[Path]:
    """The master notebooks ``assignments/NN_name.ipynb`` (all, or those whose stem is in
    ``names``, a name given either as ``NN_name`` or as its number ``NN``)."""
    found = sorted(SOURCES.glob("[0-9][0-9]_*.ipynb"))
    if names:
        wanted = set(names)
        found = [p for p in found if p.stem in wanted or p.stem[:2] in wanted]
        missing = wanted - {p.stem for p in found} - {p.stem[:2] for p in found}
        if missing:
            raise ValueError(f"no assignment named {sorted(missing)} in {SOURCES}")
    return found


def questions(master: Path) -> list[Question]:
    """The questions of a master notebook, in order, from its ``# BEGIN QUESTION`` cells."""
    import nbformat
    import yaml

    found = []
    for cell in nbformat.read(master, as_version=4).cells:
        lines = cell.source.splitlines()
        if cell.cell_type == "raw" and lines and lines[0].strip().upper() == "# BEGIN QUESTION":
            config = yaml.safe_load("\n".join(lines[1:]))
            points = config.get("points", 1)
            total = sum(points) if isinstance(points, list) else points
            found.append(Question(master.stem, config["name"], total, config.get("manual", False)))
    return found


# ------------------------------------------------------------------------------------- build
def build(names=None, dest: Path = DIST, check_solutions: bool = True) -> list[Path]:
    """``otter assign`` every master (or those in ``names``) into ``dest/NN_name/``.

    With ``check_solutions`` otter also grades the solution notebook and fails unless it scores
    full marks. Returns the output folders.
    """
    from otter.assign import main as assign

    outputs = []
    for master in masters(names):
        output = Path(dest) / master.stem
        assign(str(master), str(output), no_pdfs=True, no_run_tests=not check_solutions)
        for notebook in output.glob("*/*.ipynb"):
            _drop_jupytext_metadata(notebook)
        _zip_folder(output / "student", output / f"{master.stem}-student.zip", master.stem)
        outputs.append(output)
    return outputs


def _drop_jupytext_metadata(path: Path) -> None:
    """Generated notebooks are not paired with a .py twin: remove the master's jupytext metadata."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        cell.metadata.pop("lines_to_next_cell", None)
    nbformat.write(notebook, path)


def _zip_folder(folder: Path, archive: Path, top: str) -> None:
    """Zip ``folder``'s files under a top folder ``top`` (what unzipping the archive creates)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, Path(top) / path.relative_to(folder))


def autograder_zip(name: str, dist: Path = DIST) -> Path:
    """The newest autograder zip of assignment ``name`` under ``dist`` (built by :func:`build`)."""
    zips = sorted((Path(dist) / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not zips:
        raise FileNotFoundError(f"no autograder for {name} under {dist}: run `make assignments`")
    return zips[-1]


# ------------------------------------------------------------------------------------- grade
def assignment_of(submission: Path) -> str:
    """The assignment a handed-in notebook (or otter export zip) belongs to, from the name otter
    writes into every generated notebook's metadata (``metadata.otter.assignment_name``)."""
    submission = Path(submission)
    if submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as bundle:
            inside = [n for n in bundle.namelist() if n.endswith(".ipynb")]
            if len(inside) != 1:
                raise ValueError(f"{submission.name} holds {len(inside)} notebooks, expected one")
            text = bundle.read(inside[0]).decode("utf-8")
    else:
        text = submission.read_text(encoding="utf-8")
    name = json.loads(text).get("metadata", {}).get("otter", {}).get("assignment_name")
    if not name:
        raise ValueError(f"{submission.name} is not a notebook generated by `make assignments` "
                         "(no otter assignment name in its metadata)")
    return name


def grade_one(submission: Path, dist: Path = DIST) -> dict:
    """Grade one submission with ``otter run`` (no Docker): ``{question: score}`` plus
    ``assignment``, ``autograded``, ``possible`` and ``seconds``."""
    from otter.api import grade_submission

    name = assignment_of(submission)
    start = time.perf_counter()
    results = grade_submission(str(submission), str(autograder_zip(name, dist)), quiet=True)
    scores = {test: results.get_score(test) for test in results.test_files}
    return {"assignment": name, **scores, "autograded": results.total,
            "possible": results.possible, "seconds": round(time.perf_counter() - start, 1)}


def grade(submissions: Path, dist: Path = DIST, output: Path | None = None):
    """Grade every ``.ipynb``/``.zip`` under ``submissions`` into a table (and a CSV at ``output``).

    One row per submission; a column per question of the assignments present, course order;
    written questions stay empty for the teacher (their maximum is in ``manual_possible``). A
    submission that cannot be graded gets its error in ``error`` and no scores.
    """
    import pandas as pd

    submissions = Path(submissions)
    files = sorted(p for p in submissions.rglob("*")
                   if p.suffix in (".ipynb", ".zip") and ".ipynb_checkpoints" not in p.parts)
    rows = []
    for path in files:
        row = {"submission": str(path.relative_to(submissions))}
        try:
            row.update(grade_one(path, dist))
        except Exception as error:  # one broken file must not stop a class's grading
            row["error"] = f"{type(error).__name__}: {error}"
        print(f"{row['submission']}: " + (f"{row['autograded']:g}/{row['possible']:g} "
              f"autograded points in {row['seconds']} s" if "error" not in row else row["error"]),
              flush=True)
        rows.append(row)
    graded = {row["assignment"] for row in rows if "assignment" in row}
    course = [q for m in masters() if m.stem in graded for q in questions(m)]
    manual = {}
    for q in course:
        manual[q.assignment] = manual.get(q.assignment, 0) + (q.points if q.manual else 0)
    for row in rows:
        if "assignment" in row:
            row["manual_possible"] = manual.get(row["assignment"])
    columns = ["submission", "assignment", *[q.name for q in course], "autograded", "possible",
               "manual_possible", "seconds"]
    table = pd.DataFrame(rows, columns=columns + (["error"] if any("error" in r for r in rows) else []))
    if output is not None:
        table.to_csv(output, index=False)
    return table


# ------------------------------------------------------------------------ in a student notebook
def _on_colab() -> bool:
    return "google.colab" in sys.modules


def student_tests(name: str) -> Path:
    """Build assignment ``name`` from the course's own master into a temporary folder (solutions
    not checked) and return its public tests: for a student notebook opened without ``tests/``."""
    output, = build([name], Path(tempfile.mkdtemp(prefix="course-tests-")), check_solutions=False)
    return output / "student" / "tests"


def grader_for(name: str):
    """otter's ``grader`` for the student notebook of assignment ``name``.

    ``grader.check("question")`` runs that question's public tests and shows which fail.
    Tests come from ``./tests`` (the handed-out folder); without it — on Colab, or a notebook
    downloaded alone — they are built from the course clone (:func:`student_tests`). On Colab,
    otter-grader is installed first, like otter's own Colab notebooks do. When ``otter run``
    grades the notebook, otter replaces the tests by the hidden ones itself.
    """
    if importlib.util.find_spec("otter") is None:
        if not _on_colab():
            raise ModuleNotFoundError(f"otter-grader is not installed: pip install {OTTER}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", OTTER], check=True)
        importlib.invalidate_caches()  # let this running kernel import what pip just installed
    import otter

    notebook = Path(f"{name}.ipynb")
    tests = Path("tests")
    if not otter.Notebook._grading_mode and not tests.is_dir():
        tests = student_tests(name)
    return otter.Notebook(str(notebook) if notebook.is_file() else None, tests_dir=str(tests))


# ---------------------------------------------------------------------------------------- CLI
def _print_questions() -> None:
    for master in masters():
        listed = questions(master)
        auto = sum(q.points for q in listed if not q.manual)
        manual = sum(q.points for q in listed if q.manual)
        print(f"{master.stem}: {auto:g} autograded + {manual:g} written points")
        for q in listed:
            print(f"  {q.name:<22} {q.points:>4g}  {'written (rubric)' if q.manual else 'autograded'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.assignments", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="student notebooks, solutions and autograders")
    make.add_argument("names", nargs="*", help="assignments to build (default: all), e.g. 03")
    make.add_argument("--dest", type=Path, default=DIST)
    make.add_argument("--no-check", action="store_true",
                      help="do not grade the solution notebooks while building")
    score = commands.add_parser("grade", help="grade a folder of handed-in notebooks into a CSV")
    score.add_argument("submissions", type=Path)
    score.add_argument("--dist", type=Path, default=DIST)
    score.add_argument("--out", type=Path, default=None, help="CSV (default: SUBMISSIONS/grades.csv)")
    commands.add_parser("questions", help="list every question with its points")
    args = parser.parse_args(argv)

    if args.command == "build":
        for output in build(args.names, args.dest, check_solutions=not args.no_check):
            print(f"{output}: student/ (hand out; zipped as {output.name}-student.zip), "
                  "autograder/ (solution notebook, tests, autograder zip)")
    elif args.command == "grade":
        if not args.submissions.is_dir():
            parser.error(f"{args.submissions} is not a folder of submissions")
        out = args.out or args.submissions / "grades.csv"
        table = grade(args.submissions, args.dist, out)
        print(f"{len(table)} submissions graded -> {out}")
    else:
        _print_questions()
    return 0


if __name__ == "__main__":
    sys.exit(main())
