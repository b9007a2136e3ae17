"""The teaching and grading kit (assignments/, helpers.assignments, helpers.fixtures).

What a teacher relies on, checked on the notebooks `make assignments` generates (built here into a
temporary folder, without otter's own solution run):

- every solution notebook scores full marks, and every untouched student notebook scores zero on
  every autograded question;
- `make grade` grades a folder with `otter run` into one CSV row per submission;
- one deliberately wrong answer per question (MUTANTS) loses points on that question, and
  on no other;
- every student notebook, opened fresh, runs top to bottom offline with its `# YOUR CODE HERE`
  cells unfilled, and each check cell tells the student that its checks fail;
- the sources are well formed: paired with their py:percent twins, the Colab bootstrap first,
  public and hidden tests for every autograded question, a rubric for every written one.

`otter run` starts a kernel per notebook, so to keep `make test` fast it grades only two
notebooks here (`make assignments` itself runs it on every solution); the other gradings run the
same autograder test files with otter's own grading mode and Checker in this process
(`grade_in_process`), itself checked to give every solution full marks.
"""
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest
import torch

from helpers import assignments, fixtures
from helpers.colab import BOOTSTRAP

ROOT = Path(__file__).resolve().parent.parent
MASTERS = assignments.masters()
NAMES = [m.stem for m in MASTERS]

# One deliberately wrong answer per autograded question: (question, solution text, wrong text).
MUTANTS = {
    "01_classify_imagenet_a": [
        ("protocol", "return head[logits[:, head].argmax(dim=1)]",
         "return logits.argmax(dim=1)"),  # the naive 1000-way arg-max
        ("ece", "error += float(inside.double().mean() * gap)",
         "error += float(gap) / int((torch.bincount(which, minlength=n_bins) > 0).sum())"),  # unweighted bins
        ("temperature", "return (logits / temperature).softmax(dim=-1)",
         "return (logits * temperature).softmax(dim=-1)"),  # multiplies by T
    ],
    "02_attention_maps": [
        ("cls_attention", "cls_rows = attentions[layer][:, :, 0, 1:]",
         "cls_rows = attentions[layer][:, :, 1:, 0]"),  # the CLS column, not its row
        ("object_share", "torch.nn.functional.avg_pool2d(", "torch.nn.functional.max_pool2d("),  # any pixel counts the cell
    ],
    "03_rollout_gmar_legrad": [
        ("attention_gradients", "score = outputs.logits.gather(1, targets[:, None]).sum()",
         "score = outputs.logits.softmax(-1).gather(1, targets[:, None]).sum()"),  # probability, not logit
        ("rollout", "step = mixed / mixed.sum(dim=-1, keepdim=True)",
         "step = mixed / mixed.sum(dim=-1)[:, None, :]"),  # vit-explain's column-wise division
        ("chefer", "weighted = (gradient * attention).clamp(min=0).mean(dim=1)",
         "weighted = (gradient * attention).mean(dim=1)"),  # no ReLU
        ("gmar", 'if norm == "l1":', 'if norm == "l2":'),  # L1 and L2 swapped
        ("legrad", "g.clamp(min=0).mean(dim=(1, 2))[:, 1:]",
         "g.mean(dim=1).clamp(min=0).mean(dim=1)[:, 1:]"),  # ReLU after the mean over heads
    ],
    "04_lrp_gamma": [
        ("gamma_rule",
         "return (x_pos * (c_pos @ favour_pos + c_neg @ favour_neg)\n"
         "            + x_neg * (c_pos @ favour_neg + c_neg @ favour_pos))",
         "return x * (c_pos @ favour_pos + c_neg @ favour_neg)"),  # every input taken as positive
        ("conservation",
         'if name.endswith("bias") or "cls_token" in name or "position_embeddings" in name:',
         'if name.endswith("bias") or "cls_token" in name:'),  # position embeddings kept
    ],
    "05_evaluating_explanations": [
        ("pointing_game", "object_pixels).min() <= tolerance)", "object_pixels).min() <= 0)"),  # tolerance ignored
        ("deletion", "argsort(dim=1, descending=True)", "argsort(dim=1, descending=False)"),  # least relevant first
    ],
}


# ------------------------------------------------------------------------------------ sources
def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


@pytest.fixture(params=MASTERS, ids=lambda p: p.stem)
def master(request):
    return request.param, nbformat.read(request.param, as_version=4)


# Lecture notebooks whose exercises are not graded assignments yet (written, not autograded).
UNGRADED = {"06_backbones", "07_fine_tuning"}


def test_one_assignment_per_lecture_notebook():
    lectures = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert NAMES == [name for name in lectures if name not in UNGRADED]


def test_master_is_paired_with_its_py_twin(master):
    path, notebook = master
    twin = jupytext.read(path.with_suffix(".py"))
    cells = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in notebook.cells]
    twin_cells = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in twin.cells]
    assert twin_cells == cells, f"{path.name} and its .py differ: run `make sync`"


def test_bootstrap_then_grader_then_the_assignment_name(master):
    path, notebook = master
    first, second = _code_cells(notebook)[:2]
    assert first.source == BOOTSTRAP, "run `make sync` to rewrite the bootstrap cell"
    assert f'grader = grader_for("{path.stem}")' in second.source
    config = next(c for c in notebook.cells if c.cell_type == "raw"
                  and c.source.startswith("# ASSIGNMENT CONFIG"))
    assert f"name: {path.stem}" in config.source
    assert "config_file: otter-config.yml" in config.source


def test_question_names_are_unique_across_the_course():
    names = [q.name for m in MASTERS for q in assignments.questions(m)]
    assert len(names) == len(set(names)), "question names are CSV columns: keep them unique"


def test_every_question_has_public_and_hidden_tests_or_a_rubric(master):
    path, notebook = master
    blocks = _question_blocks(notebook)
    assert blocks, f"{path.name} has no question"
    for question in assignments.questions(path):
        cells = blocks[question.name]
        if question.manual:
            assert any("**Rubric" in c.source for c in cells), f"{question.name}: no rubric"
            continue
        tests = _between(cells, "# BEGIN TESTS", "# END TESTS")
        hidden = [c for c in tests if c.source.lstrip().startswith("# HIDDEN")]
        assert hidden and len(hidden) < len(tests), f"{question.name}: needs public and hidden tests"
        config = next(c for c in notebook.cells if c.cell_type == "raw"
                      and f"name: {question.name}\n" in c.source + "\n")
        points = re.search(r"points: \[([^\]]*)\]", config.source)
        assert points and len(points.group(1).split(",")) == len(tests), \
            f"{question.name}: give one point value per test"
        assert question.name in {m[0] for m in MUTANTS[path.stem]}, \
            f"{question.name}: add a deliberately wrong answer to MUTANTS"


def _question_blocks(notebook):
    blocks, current = {}, None
    for cell in notebook.cells:
        if cell.cell_type == "raw" and cell.source.startswith("# BEGIN QUESTION"):
            current = re.search(r"name: (\w+)", cell.source).group(1)
            blocks[current] = []
        elif cell.cell_type == "raw" and cell.source.startswith("# END QUESTION"):
            current = None
        elif current:
            blocks[current].append(cell)
    return blocks


def _between(cells, begin, end):
    inside, found = False, []
    for cell in cells:
        if cell.cell_type == "raw" and cell.source.startswith(begin):
            inside = True
        elif cell.cell_type == "raw" and cell.source.startswith(end):
            inside = False
        elif inside:
            found.append(cell)
    return found


def test_otter_pin_agrees_with_requirements_and_constraints():
    version = assignments.OTTER.split("==")[1]
    assert f"otter-grader=={version}" in (ROOT / "requirements-dev.txt").read_text().split()
    assert f"otter-grader=={version}" in (ROOT / "constraints.txt").read_text().split()


def test_generated_files_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "assignments/dist/" in ignored and ".OTTER_LOG" in ignored


# ------------------------------------------------------------------------- fixtures' asserts
def test_assert_own_code_flags_helpers_however_imported():
    import helpers
    from helpers.methods.rollout import rollout_matrix as shortcut

    namespace = {"helpers": helpers, "shortcut": shortcut, "torch": torch}
    exec("def direct(a):\n    return helpers.explain(a)\n"
         "def aliased(a):\n    return shortcut(a)\n"
         "def nested(a):\n    f = lambda b: shortcut(b)\n    return f(a)\n"
         "def own(a):\n    return torch.stack(a).mean(0)\n", namespace)
    for name in ("direct", "aliased", "nested"):
        with pytest.raises(AssertionError, match="write this part yourself"):
            fixtures.assert_own_code(namespace[name])
    fixtures.assert_own_code(namespace["own"])


def test_assert_close_messages():
    expected = torch.tensor([1.0, 2.0])
    fixtures.assert_close(expected + 1e-7, expected)
    for wrong, message in ((None, "should be a torch.Tensor"), (torch.ones(3), "has shape"),
                           (torch.tensor([1.0, float("nan")]), "NaN"),
                           (torch.tensor([1.0, 2.1]), "differs from the reference")):
        with pytest.raises(AssertionError, match=message):
            fixtures.assert_close(wrong, expected)


def test_grader_builds_the_public_tests_when_the_notebook_comes_alone(tmp_path):
    """A student notebook opened without its tests/ folder (Colab, a notebook downloaded alone)."""
    name = NAMES[0]
    with _working_directory(tmp_path):
        grader = assignments.grader_for(name)
    tests = Path(grader._tests_dir)
    build_folder = tests.parents[2]
    try:
        assert tests.is_dir() and build_folder.name.startswith("course-tests-")
        assert {p.stem for p in tests.glob("*.py")} == set(_autograded(name))
        assert all("hidden=True" not in p.read_text() for p in tests.glob("*.py"))
    finally:
        if build_folder.name.startswith("course-tests-"):
            shutil.rmtree(build_folder)


# ------------------------------------------------------------------------------ built kit
@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Every assignment built as `make assignments` does (solutions not run here)."""
    dist = tmp_path_factory.mktemp("dist")
    assignments.build(dest=dist, check_solutions=False)
    return dist


@contextmanager
def _working_directory(path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def grade_in_process(notebook_path: Path, tests_dir: Path, workdir: Path) -> dict:
    """Grade a notebook as `otter run` does inside its kernel, but in this process: otter's grading
    mode with the autograder's tests, the code cells run in order (cells tagged otter_ignore
    skipped, errors ignored), then every test no check cell ran. Returns {question: score}."""
    import otter
    from otter.execute import Checker
    from otter.test_files import GradingResults

    notebook = nbformat.read(notebook_path, as_version=4)
    namespace = {"__name__": "__main__"}
    otter.Notebook.init_grading_mode(str(tests_dir))
    try:
        with _working_directory(workdir):
            for cell in _code_cells(notebook):
                if "otter_ignore" in cell.metadata.get("tags", []):
                    continue
                try:
                    exec(compile(cell.source, str(notebook_path), "exec"), namespace)
                except Exception:  # otter run executes with allow_errors too
                    pass
            for test in sorted(tests_dir.glob("*.py")):
                Checker.check_if_not_already_checked(str(test), namespace)
        results = GradingResults(Checker.get_results())
    finally:
        otter.Notebook._grading_mode = False
        otter.Notebook._tests_dir_override = None
        Checker.disable_tracking()
        Checker.clear_results()
    return {name: results.get_score(name) for name in results.test_files}


def _autograded(name):
    return {q.name: q.points for q in assignments.questions(ROOT / "assignments" / f"{name}.ipynb")
            if not q.manual}


def test_make_grade_scores_a_folder_with_otter_run(built, tmp_path, monkeypatch):
    """`make grade` on a folder holding a solution notebook and an untouched student notebook: each
    graded by `otter run` (a kernel each, as a teacher grades), one CSV row each."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels: tiny tensors, no use for a thread pool
    solution, student = "03_rollout_gmar_legrad", "01_classify_imagenet_a"
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(built / solution / "autograder" / f"{solution}.ipynb", submissions / "alice.ipynb")
    shutil.copy(built / student / "student" / f"{student}.ipynb", submissions / "bob.ipynb")
    table = assignments.grade(submissions, built, tmp_path / "grades.csv")
    assert (tmp_path / "grades.csv").is_file()
    assert "error" not in table, table.get("error")
    table = table.set_index("submission")
    alice, bob = table.loc["alice.ipynb"], table.loc["bob.ipynb"]
    assert alice["assignment"] == solution and bob["assignment"] == student
    expected = _autograded(solution)
    assert {q: alice[q] for q in expected} == expected
    assert alice["autograded"] == alice["possible"] == sum(expected.values())
    assert alice["manual_possible"] == 3 and pd.isna(alice["methods_reading"]), \
        "written questions are left for the teacher"
    assert all(bob[q] == 0 for q in _autograded(student)) and bob["autograded"] == 0
    assert pd.isna(bob["rollout"]), "a question of another assignment has no score"


@pytest.mark.parametrize("name", NAMES)
def test_in_process_grading_gives_solutions_full_marks(built, name, tmp_path):
    """Every solution scores full marks (and the in-process grader finds no fault where there is
    none, else the zero and mutant tests below would prove nothing)."""
    scores = grade_in_process(built / name / "autograder" / f"{name}.ipynb",
                              built / name / "autograder" / "tests", tmp_path)
    assert scores == _autograded(name)


@pytest.mark.parametrize("name", NAMES)
def test_untouched_student_notebook_scores_zero(built, name, tmp_path):
    scores = grade_in_process(built / name / "student" / f"{name}.ipynb",
                              built / name / "autograder" / "tests", tmp_path)
    assert scores == {q: 0 for q in _autograded(name)}


@pytest.mark.parametrize("name, question, right, wrong",
                         [(name, *mutant) for name, mutants in MUTANTS.items() for mutant in mutants],
                         ids=lambda value: value if re.fullmatch(r"\w+", str(value)) else "")
def test_a_wrong_answer_loses_that_questions_points_only(built, name, question, right, wrong,
                                                         tmp_path):
    notebook = nbformat.read(built / name / "autograder" / f"{name}.ipynb", as_version=4)
    holders = [c for c in _code_cells(notebook) if right in c.source]
    assert len(holders) == 1 and holders[0].source.count(right) == 1, \
        "the solution text to mutate must occur exactly once"
    holders[0].source = holders[0].source.replace(right, wrong)
    mutant = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, mutant)
    scores = grade_in_process(mutant, built / name / "autograder" / "tests", tmp_path)
    possible = _autograded(name)
    assert scores[question] < possible[question], f"{question} kept full marks with a wrong answer"
    assert {q: s for q, s in scores.items() if q != question} == \
        {q: p for q, p in possible.items() if q != question}, "other questions lost points"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_fresh_and_reports_failing_checks(built, name, tmp_path, monkeypatch):
    """Opened fresh in its handed-out folder: runs top to bottom offline (written-question figures
    included), every check cell shows failing public checks, nothing from the solutions shows."""
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel: tiny tensors, no use for threads

    folder = tmp_path / "handout"
    shutil.copytree(built / name / "student", folder)
    path = folder / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in notebook.cells)
    assert "BEGIN SOLUTION" not in source and "Model answer" not in source and "Rubric" not in source
    assert all(not c.get("outputs") for c in _code_cells(notebook)), "student notebooks have no outputs"
    assert "jupytext" not in notebook.metadata
    assert _code_cells(notebook)[0].source == BOOTSTRAP
    for test in (folder / "tests").glob("*.py"):
        assert "hidden=True" not in test.read_text(), f"{test.name}: hidden tests handed out"

    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    errors = [(c.source.splitlines()[0], o.ename, o.evalue) for c in _code_cells(notebook)
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    for question in _autograded(name):
        cell = next(c for c in _code_cells(notebook) if c.source == f'grader.check("{question}")')
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert f"{question} results:" in shown and "Test case failed" in shown, shown
