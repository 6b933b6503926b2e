"""The read side at scale: `status`, `claims`, `report` and each table read, timed on existing sweep directories.

    python -m bench.fabricate --tasks 100000 --storage /tmp/fab          # a finished sweep to read
    python -m bench.read_side /tmp/fab/scale                             # this tree
    python -m bench.read_side /tmp/fab/scale --before main               # and git REV's code, alternating

    python -m bench.read_side /tmp/fab/scale --same main                 # same tables and report as main's?

Each measurement runs in a fresh process (`--one`): wall seconds and CPU seconds (this process and the
processes it waited for: figure workers, status's forked verifiers; `cpu_first_process_s`: this process
alone, the critical path of `status` on two cores), and the 1-minute load when it ended. `report` is
written into a copy of the sweep directory made of hard links (`linked_copy`, without its `report/`: no
figure reused, and the sweep read is never written to). With `--before REV`,
`orchestrator/` and `tasks/` of REV are exported (`bench.scale.export_revision`) and measured the same
way, variants alternating. Prints one JSON line per sweep and variant; `--out` writes them all.

`--tables-before REV` times each table's `tables.read_table` in one process, REV's `results/tables.py` (loaded
from its file; the modules it imports are this tree's) and this tree's alternating, `--rounds` rounds, and
checks that both give the same frame.

`--same REV` measures nothing: REV's code and this tree's each read every table and write the report
of a linked copy, and every table, every report table (Parquet, Markdown), the page (apart from its
timings and the copy's path) and every figure's PNG are compared; exit 1, naming what differs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from bench import common

STEPS = ("reads", "status", "claims", "report")


def _cpu(who=None) -> float:
    """CPU seconds of this process and the processes it waited for (`who`: RUSAGE_SELF or _CHILDREN alone)."""
    if who is not None:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime
    return _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)


def measure(directory: str, steps=STEPS) -> dict:
    """Wall and CPU seconds of each step on the sweep directory `directory` (in this process)."""
    from orchestrator import vocab
    from orchestrator.results import tables
    from orchestrator.storage.layout import open_sweep_dir

    layout = open_sweep_dir(directory)
    out: dict = {}

    def timed(name: str, fn) -> None:
        cpu, own, wall = _cpu(), _cpu(resource.RUSAGE_SELF), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
        out[name] = {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(_cpu() - cpu, 2),
                     "cpu_first_process_s": round(_cpu(resource.RUSAGE_SELF) - own, 2),
                     "load_1m": round(os.getloadavg()[0], 1)}

    if "reads" in steps:
        from orchestrator.report import build
        projected = getattr(build, "report_columns", None)      # an earlier revision may not have it
        swept = build.swept_keys(layout)
        for table in vocab.TABLES:
            timed(f"read {table}", lambda: tables.read_table(layout, table))
            if projected is not None:
                timed(f"read {table}, the report's columns",
                      lambda: tables.read_table(layout, table, projected(table, swept)))
    if "status" in steps:
        from orchestrator import status
        timed("status", lambda: status.print_status(layout))
    if "claims" in steps:
        from orchestrator.report import build
        timed("claims", lambda: build.print_claims(layout))
    if "report" in steps:
        from orchestrator.report import build
        with tempfile.TemporaryDirectory(prefix="mmc-read-side-") as tmp:
            copy = open_sweep_dir(linked_copy(directory, os.path.join(tmp, layout.sweep)))
            timed("report", lambda: build.write_report(copy))
    return out


def linked_copy(directory: str, into: str) -> str:
    """`directory` (a local sweep directory) as hard links under `into`, without its `report/`: a report
    written there replaces files (written to a temporary name, renamed into place) and never changes
    the original's."""
    shutil.copytree(directory, into, copy_function=os.link, ignore=lambda d, names: ["report"]
                    if os.path.samefile(d, directory) and "report" in names else [])
    return into


_DUMP = """
import sys
from orchestrator import vocab
from orchestrator.report import build
from orchestrator.results import tables
from orchestrator.storage.layout import open_sweep_dir
layout = open_sweep_dir(sys.argv[1])
for table in vocab.TABLES:
    tables.read_table(layout, table).to_parquet(f"{sys.argv[2]}/{table}.parquet")
build.write_report(layout)
"""


def same_outputs(directory: str, rev: str) -> list[str]:
    """What differs between REV's tables and report of `directory` and this tree's (empty: nothing)."""
    import difflib
    import re

    import pandas as pd
    from bench.scale import export_revision

    tmp = tempfile.mkdtemp(prefix="mmc-read-side-same-")
    name = os.path.basename(os.path.normpath(directory))
    out = {}
    for variant, code in (("before", export_revision(rev)), ("after", None)):
        root = os.path.join(tmp, variant)
        os.makedirs(os.path.join(root, "tables"))
        copy = linked_copy(directory, os.path.join(root, name))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (code, str(common.REPO)) if p)}
        subprocess.run([sys.executable, "-c", _DUMP, copy, os.path.join(root, "tables")], cwd=code or str(common.REPO),
                       env=env, check=True)
        out[variant] = (root, copy)
    problems = []
    (before, copy_a), (after, copy_b) = out["before"], out["after"]
    for table in sorted(os.listdir(os.path.join(before, "tables"))):
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(os.path.join(before, "tables", table)),
                                          pd.read_parquet(os.path.join(after, "tables", table)))
        except AssertionError as exc:
            problems.append(f"table {table}: {str(exc).splitlines()[0]}")
    files_a, files_b = sorted(os.listdir(os.path.join(copy_a, "report"))), sorted(os.listdir(os.path.join(copy_b, "report")))
    if files_a != files_b:
        problems.append(f"report files differ: {sorted(set(files_a) ^ set(files_b))}")
    timing = re.compile(rb"report rendered in</th><td[^>]*>[^<]*|Generated [0-9-]+ [0-9:]+ UTC")
    for file in sorted(set(files_a) & set(files_b)):
        a = open(os.path.join(copy_a, "report", file), "rb").read()
        b = open(os.path.join(copy_b, "report", file), "rb").read()
        if file.endswith(".parquet"):
            try:
                pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(a)), pd.read_parquet(io.BytesIO(b)))
            except AssertionError as exc:
                problems.append(f"report/{file}: {str(exc).splitlines()[0]}")
        elif file.endswith(".html"):
            a = timing.sub(b"", a.replace(copy_a.encode(), b"SWEEP"))
            b = timing.sub(b"", b.replace(copy_b.encode(), b"SWEEP"))
            if a != b:
                lines = difflib.unified_diff(a.decode().splitlines(), b.decode().splitlines(), lineterm="", n=0)
                problems.append(f"report/{file} differs (timings and the copy's path left out): "
                                + " | ".join(list(lines)[2:6])[:2000])
        elif file != "figures.json" and a != b:    # figures.json: keys hash the drawing code, which may differ
            problems.append(f"report/{file} differs")
    if problems:
        problems.append(f"(both kept in {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return problems


def tables_side_by_side(directory: str, rev: str, rounds: int = 3) -> list[dict]:
    """Each table read whole by REV's `tables.read_table` and by this tree's, in this process, alternating;
    wall and CPU seconds of each read; AssertionError if the two frames differ."""
    import importlib.util

    import pandas as pd
    from bench.scale import export_revision
    from orchestrator import vocab
    from orchestrator.results import tables
    from orchestrator.storage.layout import open_sweep_dir

    spec = importlib.util.spec_from_file_location("tables_before", os.path.join(export_revision(rev), "orchestrator",
                                                                                 "results", "tables.py"))
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    layout, out = open_sweep_dir(directory), []
    for r in range(rounds):
        for table in vocab.TABLES:
            frames = {}
            for name, module in (("before", before), ("after", tables))[::1 if r % 2 == 0 else -1]:
                cpu, wall = _cpu(resource.RUSAGE_SELF), time.perf_counter()
                frames[name] = module.read_table(layout, table)
                out.append({"round": r, "table": table, "variant": name, "wall_s": round(time.perf_counter() - wall, 2),
                            "cpu_s": round(_cpu(resource.RUSAGE_SELF) - cpu, 2), "load_1m": round(os.getloadavg()[0], 1)})
                print(json.dumps(out[-1]), flush=True)
            pd.testing.assert_frame_equal(frames["before"], frames["after"], obj=table)
    return out


def spawn(directory: str, code: str | None, steps: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (code, str(common.REPO)) if p)}
    proc = subprocess.run([sys.executable, "-m", "bench.read_side", directory, "--one", "--steps", ",".join(steps)],
                          cwd=code or str(common.REPO), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {directory} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("directories", nargs="+", help="sweep directories (<storage>/<name>)")
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--before", default=None, help="git revision to compare with (its orchestrator/ and tasks/)")
    p.add_argument("--out", default=None, help="write every result as JSON here")
    p.add_argument("--same", default=None, metavar="REV",
                   help="compare every table and the report with git revision REV's (nothing is timed)")
    p.add_argument("--tables-before", default=None, metavar="REV",
                   help="time each table's read_table, REV's and this tree's alternating in one process")
    p.add_argument("--rounds", type=int, default=3, help="rounds of --tables-before")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps.split(",")
    if args.same:
        failed = False
        for directory in args.directories:
            problems = same_outputs(directory, args.same)
            failed = failed or bool(problems)
            print(f"{directory}: " + ("same tables and report as " + args.same if not problems else
                                      "differs from " + args.same + ":\n  " + "\n  ".join(problems)), flush=True)
        return 1 if failed else 0
    if args.tables_before:
        results = [row for d in args.directories for row in tables_side_by_side(d, args.tables_before, args.rounds)]
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"command": common.command_line(), "environment": common.environment(), "results": results},
                          f, indent=1)
        return 0
    if args.one:
        print(json.dumps(measure(args.directories[0], steps)))
        return 0
    from bench.scale import export_revision

    variants = {"after": None} if not args.before else {"before": export_revision(args.before), "after": None}
    results = []
    for i, directory in enumerate(args.directories):
        names = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for name in names:
            result = {"sweep": directory, "variant": name, **spawn(directory, variants[name], steps)}
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"command": common.command_line(), "environment": common.environment(), "results": results},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
