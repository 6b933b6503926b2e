"""The read side at scale: `status`, `claims`, `report` and each table read, timed on existing sweep directories.

    python -m bench.fabricate --tasks 100000 --storage /tmp/fab          # a finished sweep to read
    python -m bench.read_side /tmp/fab/scale                             # this tree
    python -m bench.read_side /tmp/fab/scale --before main               # and git REV's code, alternating

Each measurement runs in a fresh process (`--one`): wall seconds and CPU seconds (this process and the
processes it waited for: figure workers, status's forked verifiers; `cpu_first_process_s`: this process
alone, the critical path of `status` on two cores), and the 1-minute load when it ended. `report` starts from an empty `report/` directory (no figure reused). With `--before REV`,
`orchestrator/` and `tasks/` of REV are exported (`bench.scale.export_revision`) and measured the same
way, variants alternating. Prints one JSON line per sweep and variant; `--out` writes them all.
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
        for table in vocab.TABLES:
            timed(f"read {table}", lambda: tables.read_table(layout, table))
    if "status" in steps:
        from orchestrator import status
        timed("status", lambda: status.print_status(layout))
    if "claims" in steps:
        from orchestrator.report import build
        timed("claims", lambda: build.print_claims(layout))
    if "report" in steps:
        from orchestrator.report import build
        shutil.rmtree(str(layout.storage.local_path(layout.report_dir())), ignore_errors=True)
        timed("report", lambda: build.write_report(layout))
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
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps.split(",")
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
