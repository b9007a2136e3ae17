"""helpers.bench: the table ``make bench`` writes (a smoke run on a tiny ViT; no time is asserted)."""
import math

import pytest

from helpers import bench


@pytest.fixture(scope="module")
def quick_costs(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "costs.csv"
    records = bench.main(["--quick", "--threads", "1", "--batches", "1", "2", "--csv", str(path)])
    return records, bench.load_costs(path)


def test_every_method_and_peer_has_a_row_per_batch_and_thread_count(quick_costs):
    records, costs = quick_costs
    assert list(costs.columns) == bench.COLUMNS
    assert len(costs) == len(records) == 2 * len(bench.ROWS + bench.PEERS)
    for row in bench.ROWS + bench.PEERS:
        for batch in (1, 2):
            match = costs[(costs["method"] == row.method) & (costs["variant"] == row.variant)
                          & (costs["implementation"] == row.implementation)
                          & (costs["batch"] == batch) & (costs["threads"] == 1)]
            assert len(match) == 1, (row.name, batch)
            assert match["floor"].item() == row.floor
            assert match["ratio"].item() > 0 and match["seconds_per_image"].item() > 0
    methods = set(costs["method"])
    assert {"attention", "rollout", "chefer", "gmar", "legrad", "attnlrp"} <= methods
    assert costs.attrs["header"][0].startswith("helpers.bench: --quick tiny ViT")


def test_peers_compute_the_same_maps_as_ours(quick_costs):
    _, costs = quick_costs
    peers = costs[costs["implementation"] != bench.OURS]
    assert set(peers["implementation"]) == {bench.LXT, bench.TORCHCAM}
    assert (peers["max_rel_diff"] <= 1e-4).all(), peers
    ours = costs[costs["implementation"] == bench.OURS]
    assert ours["max_rel_diff"].map(math.isnan).all()


def test_load_costs_says_what_to_do_without_a_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="make bench"):
        bench.load_costs(tmp_path / "missing.csv")


def test_readme_table_is_the_committed_csv():
    """The README's benchmark table quotes figures/bench/costs.csv: every ratio, to 2 decimals."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Benchmark", 1)[1].split("\n## ", 1)[0]
    costs = bench.load_costs()
    settings = [(1, 1), (1, 8), (2, 1), (2, 8)]  # the table's columns: (threads, batch)
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == len(costs) // len(settings)
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, *variant = cells[0].strip("`").replace("` ", " ").split(" ")
        implementation = "helpers" if cells[1] == "this course" else cells[1]
        chosen = costs[(costs["method"] == method) & (costs["variant"] == " ".join(variant))
                       & costs["implementation"].str.startswith(implementation)]
        for (threads, batch), quoted in zip(settings, cells[3:]):
            ratio = chosen[(chosen["threads"] == threads) & (chosen["batch"] == batch)]["ratio"]
            assert len(ratio) == 1 and f"{ratio.iloc[0]:.2f}×" == quoted, (cells[0], cells[1], threads, batch)
