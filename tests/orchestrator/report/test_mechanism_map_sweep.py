"""The shipped `sweeps/mechanism_map.yaml` plans from a checkout (its population: every pair of its
models once, the controls apart), and a tiny version of it, every task's outputs written by the
synthetic runner (no Ray), gets its maps, `clusters.parquet` and claim (e) in the report."""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.report import build as report
from orchestrator.results import tables
from orchestrator.results.plan import write_plan
from orchestrator.run import recording, work
from orchestrator.spec import rules as spec_rules
from orchestrator.spec.sweep_spec import dump_spec, load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support import runners

SPEC = Path(__file__).resolve().parents[3] / "sweeps" / "mechanism_map.yaml"


def test_the_shipped_sweep_plans_its_population():
    spec = load_spec(SPEC)
    graph = build_graph(spec)
    models = [t for t in graph.tasks.values() if t.kind in (vocab.PRETRAIN, vocab.FINETUNE)
              and not (t.kind == vocab.PRETRAIN and t.config.get("spawn"))]
    k = len(spec.seeds) * (len(spec.cue_proportions) + len(spec.cue_models) * len(spec.methods))
    assert len(models) == k == 34
    population = [frozenset(t.config["endpoints"]) for t in graph.tasks.values()
                  if t.labels["pair_type"] == vocab.POPULATION]
    assert len(population) == len(set(population)) == k * (k - 1) // 2
    assert set(population) == {frozenset((a.id, b.id)) for a, b in combinations(models, 2)}
    spawn = [t for t in graph.tasks.values() if t.labels["pair_type"] == "cue~cue:spawn@0"]
    assert len(spawn) == len(spec.seeds) * len(spec.cue_models)
    pairs = [vocab.parse_pair_type(p) for p in spec.pairs]
    assert spec_rules.estimate_tasks(spec.top, len(spec.variants), pairs) == len(graph)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The shipped sweep with one seed, three proportions and two methods, written as the synthetic
    runner writes it (7 models, 21 pairs)."""
    directory = tmp_path_factory.mktemp("mechanism-map")
    spec = load_spec(SPEC, [f"storage={directory}", "seeds=[0]", "cue_proportions=[0.0, 0.5, 1.0]",
                            "finetune.methods=[naive, cbft]"])
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(directory)), spec.name)
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    write_plan(layout, graph)
    for task in graph.tasks.values():
        result = work.execute(task, runners.name("synthetic"), work.TaskEnv(layout=layout, device=torch.device("cpu")))
        assert result.status == vocab.DONE, result.error
        row = recording.task_row(task, vocab.FINISHED, spec_hash="test", rev=None, duration_s=result.duration_s)
        tables.write_fragment(layout, vocab.TASKS, task.id, [row])
    return layout, graph, report.write_report(layout)


def test_its_report_has_the_maps_the_clusters_and_claim_e(tiny):
    layout, graph, out = tiny
    names = {Path(f).name for f in out.figures}
    assert {"map_nocue_linear.png", "map_cue_linear.png"} <= names
    assert not any(n.startswith("paths_population") for n in names)     # the maps draw the population
    clusters = pd.read_parquet(layout.storage.local_path(out.clusters))
    models = {t.id for t in graph.tasks.values() if t.kind in (vocab.PRETRAIN, vocab.FINETUNE)
              and not t.config.get("spawn")}
    assert len(models) == 7 and set(clusters["task_id"]) == models
    assert set(clusters["eval_set"]) == {"nocue", "cue"} and clusters["threshold"].notna().all()
    page = Path(layout.storage.local_path(out.html)).read_text()
    assert 'id="map"' in page and "map_cue_linear.png" in page and "(e)" in page
    claims = Path(layout.storage.local_path(layout.report_file("claims.md"))).read_text()
    assert "(e) Connectivity clusters follow mechanism" in claims
