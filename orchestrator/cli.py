"""`mmc-sweep` (also `python -m orchestrator`): run, plan, status, report, schema, data download.

Exit status: 0 success, 1 some tasks failed or were skipped, 2 bad input (spec, storage, lock,
resources, arguments) with nothing run and nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_TASKS_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _load(spec_path: str | None, storage: str | None = None, max_concurrent: int | None = None,
          tracking_uri: str | None = None):
    """Load and validate a spec; command-line overrides are validated like the keys they replace."""
    from orchestrator.spec import load_spec, validate_spec

    spec = load_spec(spec_path)
    overrides = {k: v for k, v in (("storage", storage), ("max_concurrent", max_concurrent)) if v is not None}
    flags = [f"--{k.replace('_', '-')}" for k in overrides]
    raw = {**spec.model_dump(mode="json"), **overrides}
    if tracking_uri is not None:
        raw["mlflow"] = {**raw.get("mlflow", {}), "tracking_uri": tracking_uri}
        flags.append("--tracking-uri")
    if flags:
        spec = validate_spec(raw, source=f"{spec_path or 'the default spec'} with {', '.join(flags)}")
    text = Path(spec_path).read_text() if spec_path else None
    return spec, text


def cmd_run(args) -> int:
    from orchestrator.sweep import run_sweep

    spec, text = _load(args.spec, args.storage, args.max_concurrent, args.tracking_uri)
    outcome = run_sweep(spec, spec_text=text, runner=args.runner, num_cpus=args.num_cpus,
                        ray_address=args.address, report=not args.no_report)
    return EXIT_OK if outcome.ok else EXIT_TASKS_FAILED


def cmd_plan(args) -> int:
    from orchestrator.graph import build_graph, describe_plan

    spec, _ = _load(args.spec)
    start = time.perf_counter()
    graph = build_graph(spec)
    print(describe_plan(graph))
    if args.list:
        for task in graph.tasks.values():
            print(f"{task.id}  parents={','.join(task.parents) or '-'}")
    print(f"(planned in {time.perf_counter() - start:.3f}s; nothing was run)")
    return EXIT_OK


def _layout_for(directory: str):
    """`DIR` is a sweep directory (<storage>/<sweep>) holding spec.yaml."""
    from orchestrator.layout import Storage, SweepLayout

    path = directory.rstrip("/")
    parent, _, name = path.rpartition("/")
    layout = SweepLayout(Storage(parent or "."), name)
    if not layout.storage.exists(layout.spec_file()):
        raise FileNotFoundError(f"{directory} is not a sweep directory (no spec.yaml); "
                                "give <storage>/<sweep name>, e.g. mmc-runs/default")
    return layout


def cmd_status(args) -> int:
    from orchestrator.status import print_status

    layout = _layout_for(args.dir)
    return print_status(layout, watch=args.watch, interval_s=args.interval)


def cmd_report(args) -> int:
    from orchestrator import report, sinks, stats

    layout = _layout_for(args.dir)
    barriers = sinks.read_table(layout, "barriers")
    summary = stats.summarize(barriers) if not barriers.empty else None
    if summary is not None:
        print(stats.format_table(summary))
    rep = report.write_report(layout, spec_text=layout.storage.read_bytes(layout.spec_file()).decode(),
                              summary=summary)
    print(f"report: {rep.html}")
    return EXIT_OK


def cmd_schema(args) -> int:
    from orchestrator.spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return EXIT_OK


def cmd_data_download(args) -> int:
    from tasks.datasets import download

    download(args.name, args.root)
    print(f"{args.name} is ready under {args.root}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmc-sweep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) a sweep; no SPEC runs the built-in default sweep")
    run.add_argument("spec", nargs="?", help="sweep YAML (default: the built-in digits sweep)")
    run.add_argument("--storage", help="override `storage` (local path or pyarrow.fs URI)")
    run.add_argument("--max-concurrent", type=int, help="override `max_concurrent`")
    run.add_argument("--tracking-uri", help="override `mlflow.tracking_uri` (needed with remote storage)")
    run.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    run.add_argument("--runner", default="real", choices=["real", "noop"], help=argparse.SUPPRESS)
    run.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    run.set_defaults(func=cmd_run)

    plan = sub.add_parser("plan", help="print the task graph of a sweep without running anything")
    plan.add_argument("spec", nargs="?")
    plan.add_argument("--list", action="store_true", help="also list every task id with its parents")
    plan.set_defaults(func=cmd_plan)

    status = sub.add_parser("status", help="progress of a sweep directory by task kind")
    status.add_argument("dir", help="<storage>/<sweep>, e.g. mmc-runs/default")
    status.add_argument("--watch", action="store_true", help="refresh until every task has finished")
    status.add_argument("--interval", type=float, default=2.0, help="refresh interval in seconds")
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="write summary tables, figures and report.html of a sweep")
    report.add_argument("dir")
    report.set_defaults(func=cmd_report)

    schema = sub.add_parser("schema", help="print the JSON schema of sweep specs (for editors)")
    schema.set_defaults(func=cmd_schema)

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    dl = data_sub.add_parser("download", help="fetch and checksum-verify a dataset")
    dl.add_argument("name", help="cifar10 | cifar100 | fashion_mnist | dominoes")
    dl.add_argument("--root", required=True, help="directory to put the dataset in")
    dl.set_defaults(func=cmd_data_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchestrator.spec import SpecError
    from orchestrator.sweep import SweepError

    try:
        return args.func(args)
    except (SpecError, SweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: finished tasks are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        from tasks.data import DataError

        if isinstance(exc, (DataError, ValueError)) and os.environ.get("MMC_DEBUG") != "1":
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
