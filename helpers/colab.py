"""Colab support kept in one place: the repository URL, the notebooks' bootstrap cell and badges.

``python -m helpers.colab`` (run by ``make sync``) rewrites the first code cell of every notebook
(the lecture notebooks and the assignments' sources) and the badge lines of README.md from
:data:`REPO_URL`, so a fork changes the URL here only.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_URL = "https://github.com/explaining-vits/vit-explain-course"
BRANCH = "main"
ROOT = Path(__file__).resolve().parent.parent

BOOTSTRAP = f'''# Colab bootstrap: clone the course, install what Colab lacks (never torch). Elsewhere: nothing.
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/course"):
    subprocess.run(["git", "clone", "-q", "--depth", "1", "{REPO_URL}", "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "lxt==2.1"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "/content/course/requirements.txt"], check=True)
if "google.colab" in sys.modules:
    os.chdir("/content/course/notebooks")
    sys.path.insert(0, "/content/course")'''


def badge(notebook: str) -> str:
    """Markdown for an "Open in Colab" badge of ``notebooks/<notebook>``."""
    slug = REPO_URL.removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/notebooks/{notebook}"
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def _rewrite_notebook(path: Path) -> bool:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    if first.source == BOOTSTRAP:
        return False
    first.source = BOOTSTRAP
    nbformat.write(nb, path)
    return True


def _rewrite_readme(path: Path) -> bool:
    text = path.read_text()
    new = re.sub(r"\[!\[Open in Colab\]\([^)]*\)\]\([^)]*/notebooks/([\w.]+)\)",
                 lambda m: badge(m.group(1)), text)
    if new != text:
        path.write_text(new)
    return new != text


def main() -> None:
    notebooks = [*sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                 *sorted((ROOT / "assignments").glob("[0-9][0-9]_*.ipynb"))]
    changed = [str(p.relative_to(ROOT)) for p in notebooks if _rewrite_notebook(p)]
    if (ROOT / "README.md").exists() and _rewrite_readme(ROOT / "README.md"):
        changed.append("README.md")
    print("bootstrap/badges updated in:", ", ".join(changed) if changed else "nothing")


if __name__ == "__main__":
    sys.exit(main())
