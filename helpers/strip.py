"""Make an executed notebook's committed bytes depend on its results only: ``make run`` calls

    python -m helpers.strip notebooks/NN_name.ipynb [...]

after executing each notebook. It removes the widget state and the cells' execution timestamps,
and merges consecutive stream outputs of the same stream: a loop that prints while it computes
reaches the notebook in as many pieces as the kernel happened to flush (that depends on the
machine's load), and a re-run would otherwise change the file although every number is the same.
"""
from __future__ import annotations

import sys

import nbformat


def merged_streams(outputs: list) -> list:
    """``outputs`` with each run of consecutive ``stream`` outputs of one name joined into one."""
    joined = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            joined.append(output)
    return joined


def strip(path) -> None:
    """Rewrite the notebook at ``path`` without widget state, timestamps or split streams."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = merged_streams(cell.outputs)
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        strip(name)
