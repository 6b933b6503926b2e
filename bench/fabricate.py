"""Fabricate the storage of a finished, compacted sweep of N tasks without running them (read-side benchmarks).

    python -m bench.fabricate --tasks 100000 --storage /tmp/mmc-fab      # -> /tmp/mmc-fab/scale

What it leaves is what `python -m bench.scale` (the synthetic runner through Ray, then the compaction at
the end of the run) leaves, minus MLflow (and with the marker index in one file, a run's in one per
bundle): the built-in default sweep of `seeds=[0..k)` (whole seeds,
`bench.scale.tasks_per_seed()` tasks each: 48 now), its `spec.yaml` and `plan.parquet`, a `done.json`
per task, and every result table as one compacted part plus its manifest. Each task's rows come from the
synthetic runner itself (`tests.support.runners.synthetic`, the same values for the same task id), its
`tasks` row from the recorder's `task_row`, and the part is written by the compaction's own writer
(`compact._write_part`), in task-id order; the fragments' trip through the file system (written, read
back, deleted) is left out. With `--exact` each fragment is serialised as the task would
(`tables.rows_to_table`, `tables.fragment_bytes`), so the markers and the manifest carry its real sha256
and size (byte-identical markers to a real run's but for times); without it (~5x faster, what 10^5
tasks need) they carry the sha256 and size of the rows' `repr`, which no reader re-derives (only salvaging
a damaged part would). Durations and times in the `tasks` table are made up (`duration_s` 0.05-0.5 s, the
tasks one after another on two workers). `--check DIR`: compare a fabricated sweep with a real one of the
same seeds (same tables, columns, dtypes, rows per task and kind, files); exit 1 if they differ.

    python -m bench.fabricate --storage /tmp/mmc-fab --parts 6 --into /tmp/mmc-fab6   # -> /tmp/mmc-fab6/scale

`--parts N --into DIR` (`repart`): a copy of the fabricated sweep's spec, plan and result tables with
each table in N parts, as a run's bundles leave it (a run of 10^5 tasks: 6): every task's rows in the
part of its hash (bundles are by end time, which the task id does not order), each part in task-id
order, written by the compaction's writer under one manifest; the markers are not copied (`status`
needs them, table reads do not). The source is only read.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import multiprocessing
import random
import sys
import time
from pathlib import Path

import pyarrow as pa



def seeds_for(tasks: int) -> int:
    from bench.scale import seeds_for as scale_seeds

    return scale_seeds(tasks)


CHUNK = 2000                 # tasks per job of the worker pool
EPOCH_S = 1.8e9              # when the fabricated sweep's first task started (2027-01-15)


def fabricate(storage: str, tasks: int, name: str = "scale", log=print, workers: int = 2, exact: bool = False,
              uncompacted: bool = False) -> str:
    """Write the sweep directory `<storage>/<name>` of about `tasks` tasks (whole seeds); returns its path.
    `uncompacted`: every task's fragments written as the task writes them (implies `exact`) and left
    there, no part: what a run leaves just before the compaction at its end (compaction benchmarks)."""
    exact = exact or uncompacted
    from orchestrator import vocab
    from orchestrator.graph.dag import build_graph
    from orchestrator.results import compact, manifest as manifest_lib, outputs, plan
    from orchestrator.spec.sweep_spec import dump_spec, load_spec
    from orchestrator.storage.layout import open_sweep_dir

    seeds = seeds_for(tasks)
    start = time.perf_counter()
    spec = load_spec(None, [f"seeds={list(range(seeds))}", f"storage={storage}", f"name={name}"])
    graph = build_graph(spec)
    layout = open_sweep_dir(str(Path(storage) / name))
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    plan.write_plan(layout, graph)
    log(f"planned {len(graph)} tasks ({seeds} seeds) in {time.perf_counter() - start:.1f} s")
    ids = sorted(graph.tasks)
    chunks = [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]
    items: dict[str, list] = {table: [] for table in vocab.TABLES}
    jobs = [(storage, name, seeds, chunk, i * CHUNK, exact, uncompacted) for i, chunk in enumerate(chunks)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:   # in task-id order, as compaction writes
        for i, done in enumerate(pool.imap(_chunk, jobs)):
            for table, (meta, rows) in done.items():
                offsets = itertools.accumulate((n for *_, n in meta), initial=0)
                items[table] += [(task_id, 0, digest, size, rows.slice(at, n))
                                 for (task_id, digest, size, n), at in zip(meta, offsets)]
            log(f"  {min(len(ids), (i + 1) * CHUNK)} tasks ({time.perf_counter() - start:.0f} s)")
    for table in vocab.TABLES if not uncompacted else ():   # the compaction's writer, rows in task-id order
        part = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-fabricated"
        info, entries = compact._write_part(layout, table, part, iter(items.pop(table)))
        if info is not None:
            compact._write_manifest(layout, manifest_lib.Manifest(table, {info.name: info}, entries))
    if not uncompacted:        # a run indexes its finished tasks' markers (here in one file, a run's in one per bundle)
        outputs.index_markers(layout, [(graph.tasks[t].kind, t) for t in ids])
    log(f"fabricated {len(graph)} tasks in {time.perf_counter() - start:.1f} s: {layout.root}")
    return layout.root


def repart(source: str, target: str, parts: int, log=print) -> str:
    """Copy the sweep directory `source` to `target` (spec, plan, result tables; no markers) with each
    table's rows in `parts` parts (see the module docstring); returns `target`."""
    import shutil

    from orchestrator import vocab
    from orchestrator.results import compact, manifest as manifest_lib, tables
    from orchestrator.storage.layout import open_sweep_dir

    start = time.perf_counter()
    Path(target).mkdir(parents=True, exist_ok=False)
    for name in ("spec.yaml", "plan.parquet"):
        shutil.copyfile(Path(source) / name, Path(target) / name)
    src, dst = open_sweep_dir(source), open_sweep_dir(target)
    for table in vocab.TABLES:
        arrow = tables.read_arrow(src, table)
        old = manifest_lib.read_manifest(src, table)
        ids = arrow.column("task_id").to_pylist()
        bounds, at = {}, 0
        while at < len(ids):            # each task's rows are contiguous (read in task-id order)
            task_id, first = ids[at], at
            while at < len(ids) and ids[at] == task_id:
                at += 1
            bounds[task_id] = (first, at - first)
        group = {t: int(hashlib.sha256(t.encode()).hexdigest(), 16) % parts for t in old.tasks}
        infos, entries = {}, {}
        for k in range(parts):
            items = [(t, 0, e.sha256, e.size, arrow.slice(*bounds.get(t, (0, 0))))
                     for t, e in sorted(old.tasks.items()) if group[t] == k]
            info, written = compact._write_part(dst, table, f"{k:02d}-fabricated", iter(items))
            if info is not None:
                infos[info.name] = info
                entries.update(written)
        compact._write_manifest(dst, manifest_lib.Manifest(table, infos, entries))
        log(f"  {table}: {arrow.num_rows} rows in {len(infos)} parts ({time.perf_counter() - start:.0f} s)")
    return target


_GRAPHS: dict = {}


def _chunk(job) -> dict[str, list]:
    """One worker's share: the tasks `ids` run by the synthetic runner, their markers written, their rows
    (as the compaction's items: task id, priority, fragment sha256 and size, Arrow rows) returned."""
    import torch

    from orchestrator import vocab
    from orchestrator.graph.dag import build_graph
    from orchestrator.results import marker_format, tables
    from orchestrator.results.schemas import SCHEMAS
    from orchestrator.run.recording import task_row
    from orchestrator.run.sweep import short_hash
    from orchestrator.run.work import TaskEnv, describe_device
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import open_sweep_dir
    from tests.support import runners

    storage, name, seeds, ids, first, exact, *rest = job
    uncompacted = bool(rest and rest[0])
    if (storage, name) not in _GRAPHS:
        spec = load_spec(None, [f"seeds={list(range(seeds))}", f"storage={storage}", f"name={name}"])
        _GRAPHS[(storage, name)] = spec, build_graph(spec)
    spec, graph = _GRAPHS[(storage, name)]
    layout = open_sweep_dir(str(Path(storage) / name))
    env = TaskEnv(layout=layout, device=torch.device("cpu"))
    spec_hash = short_hash(spec)
    device = describe_device(env.device)
    items: dict[str, list] = {table: [] for table in vocab.TABLES}
    for i, task_id in enumerate(ids, start=first):
        task = graph.tasks[task_id]
        rng = random.Random(task_id)
        duration = rng.uniform(0.05, 0.5)
        started = EPOCH_S + 0.15 * i          # two workers, one task after another
        out = runners.synthetic(task, env)
        out.meta.setdefault("device", device)             # as `work.execute` adds them
        out.meta.setdefault("duration_s", duration)
        files, sizes = {}, {}
        for table, rows in out.tables.items():
            data = (_fragment if exact else _fast_fragment)(tables, table, task_id, rows, items)
            relative = layout.fragment(table, task_id)[len(layout.root) + 1:]
            files[relative], sizes[relative] = hashlib.sha256(data).hexdigest(), len(data)
        marker = marker_format.make_marker(task_id, task.kind, files, sizes, out.tables, out.metrics, out.steps,
                                           out.meta, started + duration)
        data = marker_format.marker_bytes(marker)
        if exact:
            layout.storage.write_bytes(layout.marker_file(task.kind, task_id), data)
        else:   # the same bytes, without the storage's temporary name and rename (local storage only)
            path = Path(layout.storage.local_path(layout.marker_file(task.kind, task_id)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        row = task_row(task, vocab.FINISHED, spec_hash=spec_hash, rev="fabricated", duration_s=duration,
                       device=device, started_at=started, finished_at=started + duration)
        if not exact:
            row = {**row, "started_at": tables._to_timestamp(started),
                   "finished_at": tables._to_timestamp(started + duration)}
        (_fragment if exact else _fast_fragment)(tables, vocab.TASKS, task_id, [row], items)
        if uncompacted:   # the fragments as the task (and the recorder, for `tasks`) writes them; no part
            for table, queued in items.items():
                for queued_id, _, _, _, _, data in queued:
                    layout.storage.write_bytes(layout.fragment(table, queued_id), data)
                queued.clear()
    if uncompacted:
        return {}
    if exact:
        return {table: ([(t, d, s, r.num_rows) for t, _, d, s, r, _ in queued],
                        pa.concat_tables([r for *_, r, _ in queued]) if queued else None)
                for table, queued in items.items()}
    return {table: ([(t, d, s, len(r)) for t, _, d, s, r in queued],
                    tables.conform(table, pa.Table.from_pylist([x for *_, r in queued for x in r],
                                                               schema=SCHEMAS[table])) if queued else None)
            for table, queued in items.items()}


def _fast_fragment(tables, table: str, task_id: str, rows: list[dict], items: dict) -> bytes:
    """Without `--exact`: the rows queued as they are (one Arrow table per chunk of tasks), and a stand-in
    for the fragment's bytes (the rows' `repr`) whose sha256 and size the marker and the manifest record."""
    data = repr(rows).encode()
    items[table].append((task_id, 0, hashlib.sha256(data).hexdigest(), len(data), rows))
    return data


def _fragment(tables, table: str, task_id: str, rows: list[dict], items: dict) -> bytes:
    """The fragment's bytes as the task would write them, and its rows queued for the part. The rows are
    the Arrow table the bytes were written from, conformed (what `tables.parse_fragment` gives back;
    `--check` compares the result with a real run)."""
    arrow = tables.rows_to_table(table, task_id, rows)
    data = tables.fragment_bytes(table, arrow)
    items[table].append((task_id, 0, hashlib.sha256(data).hexdigest(), len(data), tables.conform(table, arrow), data))
    return data


def shape(directory: str) -> dict:
    """What `--check` compares: per table, the columns and the rows of each task kind per task."""
    from orchestrator import vocab
    from orchestrator.results import tables
    from orchestrator.results.plan import read_plan
    from orchestrator.storage.layout import open_sweep_dir

    layout = open_sweep_dir(directory)
    plan = read_plan(layout)
    out = {"tasks": {k: int(v) for k, v in plan["kind"].value_counts().sort_index().items()}}
    for table in vocab.TABLES:
        df = tables.read_table(layout, table)
        kinds = df["task_id"].map(dict(zip(plan["task_id"], plan["kind"])))
        per_task = df.groupby([kinds, df["task_id"]]).size().groupby(level=0).agg(["min", "max", "count"])
        out[table] = {"columns": list(df.columns), "dtypes": [str(t) for t in df.dtypes],
                      "rows": len(df), "rows per task": {k: [int(x) for x in v] for k, v in per_task.iterrows()}}
    files = {}
    for table in vocab.TABLES:
        d = Path(layout.storage.local_path(layout.table_dir(table)))
        files[table] = sorted(p.name.split("-")[0] for p in d.iterdir() if p.is_file())
    out["files"] = files
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--storage", required=True)
    p.add_argument("--name", default="scale")
    p.add_argument("--workers", type=int, default=2, help="processes that run the synthetic tasks")
    p.add_argument("--exact", action="store_true",
                   help="serialise every fragment as the task would (its real sha256 and size; ~10x slower)")
    p.add_argument("--uncompacted", action="store_true",
                   help="leave every fragment as the tasks write them, no part (what compaction reads; implies --exact)")
    p.add_argument("--check", default=None, help="a real sweep directory of the same seeds to compare with")
    p.add_argument("--parts", type=int, default=None,
                   help="with --into: copy the fabricated sweep with each table in this many parts (as bundles leave it)")
    p.add_argument("--into", default=None, help="where --parts writes its copy (<into>/<name>)")
    args = p.parse_args(argv)
    if args.parts is not None:
        if args.parts < 1 or not args.into:
            print("error: `--parts` needs a count >= 1 and `--into DIR` (a new directory for the copy)", file=sys.stderr)
            return 2
        repart(str(Path(args.storage) / args.name), str(Path(args.into) / args.name), args.parts)
        return 0
    if args.check:
        real, fake = shape(args.check), shape(str(Path(args.storage) / args.name))
        same = real == fake
        for key in real:
            if real[key] != fake.get(key):
                print(f"differs: {key}:\n  real       {real[key]}\n  fabricated {fake.get(key)}")
        print("same shape" if same else "shapes differ")
        return 0 if same else 1
    fabricate(args.storage, args.tasks, args.name, workers=args.workers, exact=args.exact, uncompacted=args.uncompacted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
