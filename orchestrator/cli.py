"""`mmc-sweep` (also `python -m orchestrator`): run, plan, status, report, compact, schema, data download.

Exit status: 0 success, 1 some tasks failed or were skipped, 2 bad input (spec, storage, lock,
resources, arguments, environment variables) with nothing run and nothing written, 130 interrupted
(Ctrl-C, SIGTERM, SIGHUP; finished tasks kept). Bad input is an `orchestrator.errors.MmcError`, shown
as one `error:` line; messages go through `logging` (`orchestrator.messages.ConsoleHandler`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from orchestrator.errors import MmcError, UsageError
from orchestrator.messages import logger
from orchestrator.spec.command_line import check_num_cpus, find_plugins_here, load, number, unknown_flags
from orchestrator.uris import redact, redact_warnings, remember_arguments, scheme

EXIT_OK, EXIT_TASKS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_LOG = logger(__name__)


def cmd_run(args) -> int:
    from orchestrator.run import capacity
    from orchestrator.run.sweep import run_sweep

    check_num_cpus(args)
    if not (math.isfinite(args.wait_for_nodes) and 0 <= args.wait_for_nodes <= capacity.MAX_WAIT_FOR_NODES_S):
        raise UsageError(f"--wait-for-nodes {args.wait_for_nodes:g} is not allowed; give seconds between 0 and "
                         f"{capacity.MAX_WAIT_FOR_NODES_S}")
    spec = load(args.items, {"storage": args.storage, "max_concurrent": args.max_concurrent,
                             "mlflow.tracking_uri": args.tracking_uri})
    outcome = run_sweep(spec, runner=args.runner, num_cpus=args.num_cpus, ray_address=args.address,
                        report=not args.no_report, new_version=args.new_version,
                        autoscaler_config=args.autoscaler_config, wait_for_nodes_s=args.wait_for_nodes)
    return EXIT_OK if outcome.ok else EXIT_TASKS_FAILED


def _planning_progress(tasks: int, seconds: float) -> None:
    """A long plan's progress, on stderr (stdout may be `--json`)."""
    from orchestrator.graph.dag import planning_line

    print(planning_line(tasks, seconds), file=sys.stderr, flush=True)


def cmd_plan(args) -> int:
    from orchestrator.graph.dag import build_graph, check_settings_read, describe_plan
    from orchestrator.spec.explain import explain_spec
    from orchestrator.spec.sweep_spec import dump_spec

    spec = load(args.items)
    if args.resolved or args.explain:
        if args.list or (args.json and args.explain):   # --list lists tasks; the spec (--resolved/--explain) has none
            raise UsageError(f"{'--list' if args.list else '--json'} and --{'explain' if args.explain else 'resolved'}: "
                             "give one (--json --resolved prints the resolved spec as JSON, --list the tasks)")
        text = redact(explain_spec(spec) if args.explain else dump_spec(spec))   # URIs may carry credentials
        if args.json:
            from orchestrator.spec.yaml_io import parse_yaml
            print(json.dumps(parse_yaml(text), indent=2))
        else:
            print(text, end="")
        return EXIT_OK
    start = time.perf_counter()
    graph = build_graph(spec, progress=_planning_progress)
    check_settings_read(spec, graph)
    if args.json:
        print(json.dumps(plan_json(spec, graph, with_tasks=args.list), indent=2))
        return EXIT_OK
    print(describe_plan(graph))
    for note in spec.notes:
        print(f"note: {note}")
    if spec.axes:
        from orchestrator.messages import show
        n = len(spec.variants)
        print("swept: " + "; ".join(", ".join(f"{key} {show(list(values))}" for key, values in group)
                                    for group in spec.axes) + f" ({n} combination{'' if n == 1 else 's'})")
    if args.list:
        for task in graph.tasks.values():
            print(f"{task.id}  parents={','.join(task.parents) or '-'}")
    print(f"(planned in {time.perf_counter() - start:.3f}s; nothing was run)")
    return EXIT_OK


def plan_json(spec, graph, with_tasks: bool = False) -> dict:
    """`plan --json`: the sweep's name, task counts (all, per kind), pairs per pair type, swept settings and
    their combinations, what a default left out (`notes`), and (`--list`) each task's kind, parents, labels."""
    from orchestrator.graph.dag import LABEL_KEYS, pair_counts

    out = {"sweep": spec.name, "tasks": len(graph), "kinds": graph.counts(), "pairs": pair_counts(graph),
           "swept": [{key: list(values) for key, values in group} for group in spec.axes],
           "combinations": len(spec.variants), "notes": list(spec.notes)}
    if with_tasks:
        out["task_list"] = [{"task_id": task.id, "kind": task.kind, "parents": list(task.parents),
                             **{key: task.labels.get(key) for key in LABEL_KEYS if task.labels.get(key) is not None}}
                            for task in graph.tasks.values()]
    return out


def _layout_for(directory: str):
    """`DIR` is a sweep directory (<storage>/<sweep>) holding spec.yaml."""
    from orchestrator.messages import as_typed, first_line
    from orchestrator.storage.layout import LinkError, not_a_sweep, open_sweep_dir

    shown = as_typed(redact(directory))
    try:
        layout = open_sweep_dir(directory)
        is_sweep = layout.storage.is_file(layout.spec_file())
        exists = is_sweep or layout.storage.exists(layout.spec_file())
    except LinkError as exc:    # the sweep directory (or its spec.yaml) is a symbolic link
        raise UsageError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for unusable URIs
        raise UsageError(f"{shown} is not a sweep directory ({as_typed(redact(first_line(exc)))})") from None
    if exists and not is_sweep:
        raise UsageError(f"{shown}: its spec.yaml is not a regular file (a directory, FIFO or device); move it away")
    if not is_sweep:
        raise UsageError(not_a_sweep(layout, shown))
    return layout


def cmd_status(args) -> int:
    from orchestrator.status import print_status

    if not (math.isfinite(args.interval) and 0.1 <= args.interval <= 3600):
        raise UsageError(f"--interval {args.interval} is not allowed; give seconds between 0.1 and 3600")
    layout = _layout_for(args.dir)
    try:
        return print_status(layout, watch=args.watch, interval_s=args.interval, as_json=args.json)
    except BrokenPipeError:                # `status DIR | head`: the reader left (main says so: exit 0)
        raise
    except (ValueError, OSError) as exc:   # stored state that cannot be read (a garbled plan.parquet, ...)
        raise UsageError(f"cannot read the status of {args.dir}: {exc}") from None


def cmd_report(args) -> int:
    from orchestrator.report import build as report
    from orchestrator.run import preflight
    from orchestrator.storage.read_only import refused

    layout = _layout_for(args.dir)
    preflight.check_report_dir(layout)
    writes = f"`mmc-sweep report` writes {layout.storage.shown(layout.report_dir())} there"
    preflight.check_storage(layout, writes)   # before the report is computed
    try:
        rep = report.write_report(layout)
    except OSError as exc:   # e.g. a directory where report.html goes, a full or read-only disk
        read_only = refused(layout.storage.shown(layout.root), exc, writes)
        if read_only is not None:
            raise read_only from None
        raise UsageError(f"cannot write the report into {layout.report_dir()}: {exc}; move what is in the way "
                         "or free the storage, then run `mmc-sweep report` again") from None
    except ValueError as exc:   # no plan, and the stored spec cannot be planned: never pool two versions
        raise UsageError(str(exc)) from None
    if rep.note:
        print(rep.note, file=sys.stderr)
    if rep.text:
        print(rep.text)
    print(f"report: {layout.storage.shown(rep.html)}")
    return EXIT_OK


def cmd_claims(args) -> int:
    """Run a sweep (default: the built-in one; finished tasks are reused) and print the paper's
    claims judged against their controls; given a sweep directory, judge what it holds (nothing runs)."""
    from orchestrator.report.build import print_claims
    from orchestrator.run.sweep import run_sweep

    if args.items and (scheme(args.items[0]) or os.path.isdir(args.items[0])):   # DIR: a spec is a local file
        if len(args.items) > 1 or args.storage or args.max_concurrent or args.new_version:
            raise UsageError(f"`mmc-sweep claims {args.items[0]}` judges a sweep directory as it is; it takes no "
                             "key=value, --storage, --max-concurrent or --new-version (give a SPEC to run one)")
        layout = _layout_for(args.items[0])
        try:
            print_claims(layout)
        except (ValueError, OSError) as exc:   # no plan, and a stored spec that cannot be planned; unreadable
            raise UsageError(f"cannot judge the claims of {args.items[0]}: {exc}") from None
        return EXIT_OK
    if args.items and "=" not in args.items[0] and not os.path.exists(args.items[0]):
        from orchestrator.messages import as_typed
        raise UsageError(f"{as_typed(redact(args.items[0]))} does not exist: give a spec file (run, then judged) or a "
                         "sweep directory (<storage>/<sweep name>, judged as it is), e.g. mmc-runs/default")
    check_num_cpus(args)
    spec = load(args.items, {"storage": args.storage, "max_concurrent": args.max_concurrent})
    outcome = run_sweep(spec, num_cpus=args.num_cpus, ray_address=args.address, new_version=args.new_version)
    print_claims(outcome.layout)
    return EXIT_OK if outcome.ok else EXIT_TASKS_FAILED


def cmd_compact(args) -> int:
    from orchestrator.results import compact
    from orchestrator.storage.lock import sweep_lock
    from orchestrator.storage.read_only import refused

    from orchestrator.run import preflight

    layout = _layout_for(args.dir)
    preflight.check_links(layout)
    preflight.check_storage(layout, "compaction writes the lock and the merged part files there")
    try:
        with sweep_lock(layout):
            done = compact.compact(layout, one_part=True)
    except OSError as exc:   # storage that turned read-only or full meanwhile: every part is written whole or not at all
        read_only = refused(layout.storage.shown(layout.root), exc, "compaction writes the merged part files there")
        if read_only is not None:
            raise read_only from None
        raise UsageError(f"cannot compact {layout.storage.shown(layout.root)}: {exc}; nothing was lost (fragments "
                         "stay until their part is written); free the storage, then run `mmc-sweep compact` again") \
            from None
    changed = {t: c for t, c in done.items() if c.changed}
    print(compact.summary(changed) if changed else "nothing to compact: every table is already in its parts")
    return EXIT_OK


def cmd_schema(args) -> int:
    from orchestrator.spec.sweep_spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return EXIT_OK


def cmd_data_download(args) -> int:
    from pathlib import Path

    from tasks.datasets import DOWNLOADS, DataError, download

    from orchestrator.messages import control_character, show

    if not args.root.strip():    # '' would be the current directory, which the spec's `data.root` refuses
        raise UsageError(f"--root {args.root!r} is not allowed; give the directory to download the dataset into")
    if control_character(args.root) is not None:   # a directory every later message prints raw
        raise UsageError(f"--root {show(args.root)} has a control character; give a directory without one")
    root = Path(args.root)
    try:
        for parent in (root, *root.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"--root {args.root}: {parent} is a file, not a directory; give a directory")
                break
    except OSError as exc:   # a name too long for a path: pathlib's exists() raises ENAMETOOLONG
        raise UsageError(f"--root {show(args.root)} is not allowed: {exc.strerror or exc}; give a directory") from None
    try:
        download(args.name, args.root)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:   # a root that cannot be created or written (permissions, read-only, full disk)
        raise UsageError(f"--root {args.root}: cannot write the dataset there ({exc.strerror or exc}); give a "
                         "writable directory") from None
    print(f"{args.name} is ready under {args.root}" if DOWNLOADS.get(args.name) else
          f"{args.name} is built in: nothing to download, no --root needed")
    return EXIT_OK


_INT, _FLOAT = number(int), number(float)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # a flag is written out: `--stor` would read as `--storage` until another flag starts so (a script's
        # abbreviation then breaks, or means another flag)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):   # argparse's own errors: exit 2 with one line, as ours
        self.print_usage(sys.stderr)
        print(f"error: {redact(message)}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from orchestrator.run.capacity import DEFAULT_WAIT_FOR_NODES_S   # light: no Ray, torch or Arrow

    p = _Parser(prog="mmc-sweep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) a sweep; no SPEC runs the built-in default sweep")
    run.add_argument("items", nargs="*", metavar="[SPEC] [key=value ...]",
                     help="sweep YAML (default: the built-in digits sweep), then overrides such as finetune.lam=3 "
                          "'seeds=[0,1,2]' 'finetune.lr={grid: [0.01, 0.1]}'")
    run.add_argument("--storage", help="override `storage` (local path or pyarrow.fs URI)")
    run.add_argument("--max-concurrent", type=_INT, help="override `max_concurrent`")
    run.add_argument("--tracking-uri", help="override `mlflow.tracking_uri` (needed with remote storage)")
    run.add_argument("--num-cpus", type=_INT, help="CPUs of a local Ray (default: all)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    run.add_argument("--wait-for-nodes", type=_FLOAT, default=DEFAULT_WAIT_FOR_NODES_S, metavar="SECONDS",
                     help="on a cluster that cannot run the sweep yet while nodes are starting (or its autoscaler "
                          "was asked for them), wait this long for them before refusing; mid-run, tasks that wait "
                          "for what no node has (a node left) stop the run after this long without progress "
                          f"(default: {DEFAULT_WAIT_FOR_NODES_S})")
    run.add_argument("--autoscaler-config", metavar="YAML",
                     help="the node types the cluster's autoscaler can start: the `ray up` cluster YAML or KubeRay "
                          "RayCluster/RayJob YAML it was started with (default: read from the head's autoscaler "
                          "when the driver runs on the head, as with `ray job submit`)")
    run.add_argument("--new-version", action="store_true",
                     help="the spec changes settings of an existing sweep: make it the sweep's new version (the old "
                          "spec is kept as spec-v<N>.yaml; unchanged finished tasks are reused)")
    run.add_argument("--runner", default="real", help=argparse.SUPPRESS)   # or package.module:function (tests)
    run.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    run.set_defaults(func=cmd_run)

    claims = sub.add_parser("claims", help="run a sweep (default: the built-in one), or read a sweep directory, and "
                                           "judge the paper's claims "
                                           "against their controls")
    claims.add_argument("items", nargs="*", metavar="[SPEC] [key=value ...] | DIR",
                        help="as for run, e.g. 'seeds=[10,11,12]' name=claims_10; or a sweep directory "
                             "(<storage>/<sweep>) to judge as it is, running nothing")
    claims.add_argument("--storage", help="override `storage`")
    claims.add_argument("--max-concurrent", type=_INT, help="override `max_concurrent`")
    claims.add_argument("--num-cpus", type=_INT, help="CPUs of a local Ray (default: all)")
    claims.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    claims.add_argument("--new-version", action="store_true", help="as for run")
    claims.set_defaults(func=cmd_claims)

    plan = sub.add_parser("plan", help="print the task graph of a sweep without running anything")
    plan.add_argument("items", nargs="*", metavar="[SPEC] [key=value ...]")
    plan.add_argument("--list", action="store_true", help="also list every task id with its parents")
    plan.add_argument("--resolved", action="store_true", help="print the resolved spec (every key) instead")
    plan.add_argument("--explain", action="store_true", help="the resolved spec with the layer that set each key "
                      "(default, profile:<dataset>, extends:<sweep>, file:<spec>, override:<key=value>)")
    plan.add_argument("--json", action="store_true", help="print it as JSON, for scripts: with --resolved the "
                      "resolved spec, else the counts per kind, pairs and swept settings (with --list every task)")
    plan.set_defaults(func=cmd_plan)

    status = sub.add_parser("status", help="progress of a sweep directory by task kind",
                            description="Progress of a sweep directory by task kind. A task counts as finished "
                            "when its done.json and every output it lists verify as a run's cache check verifies "
                            "them (sizes and sha256; compacted rows by their part's sha256); one that no longer "
                            "does is named and counts as remaining.")
    status.add_argument("dir", help="<storage>/<sweep>, e.g. mmc-runs/default")
    status.add_argument("--watch", action="store_true", help="refresh until every task has finished")
    status.add_argument("--interval", type=_FLOAT, default=2.0, help="refresh interval in seconds")
    status.add_argument("--json", action="store_true", help="print one JSON object (per refresh with --watch): "
                        "counts per kind, running tasks with their epoch and ETA, failed tasks with their reason")
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="write summary tables, figures and report.html of a sweep")
    report.add_argument("dir")
    report.set_defaults(func=cmd_report)

    compact = sub.add_parser("compact", help="merge a sweep's per-task result files and part files into one part "
                                             "file per table (a run does it when it ends; this is for sweeps "
                                             "written before, or interrupted)")
    compact.add_argument("dir", help="<storage>/<sweep>, e.g. mmc-runs/default")
    compact.set_defaults(func=cmd_compact)

    schema = sub.add_parser("schema", help="print the JSON schema of sweep specs (for editors)")
    schema.set_defaults(func=cmd_schema)

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    dl = data_sub.add_parser("download", help="fetch and checksum-verify a dataset")
    dl.add_argument("name", help="cifar10 | cifar100 | fashion_mnist | dominoes")
    dl.add_argument("--root", required=True, help="directory to put the dataset in")
    dl.set_defaults(func=cmd_data_download)
    return p


def main(argv: list[str] | None = None) -> int:
    redact_warnings()
    remember_arguments(sys.argv[1:] if argv is None else argv)   # a password a message's quoting would cut
    find_plugins_here()
    try:
        return _main(argv)
    except BrokenPipeError:   # `mmc-sweep plan --list | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [x for x in extra if x.startswith("-") or not hasattr(args, "items")]
    if unknown:
        parser.error(unknown_flags(parser, args.command, unknown))
    if extra:   # overrides given after options: `run SPEC --storage X finetune.lam=3`
        args.items = [*args.items, *extra]
    from orchestrator import knobs
    from orchestrator.messages import to_console
    from orchestrator.run.signals import stop_like_ctrl_c

    to_console()
    try:
        knobs.check_all()
        with stop_like_ctrl_c():   # SIGTERM and SIGHUP: as Ctrl-C (exit 130); a second one ends at once
            return args.func(args)
    except MmcError as exc:
        _LOG.error(redact(str(exc)))
        return exc.exit_code
    except KeyboardInterrupt:
        runs = args.command in ("run", "claims")      # the others run no task: nothing to resume
        print("interrupted" + (": finished tasks are kept; rerun the same command to resume" if runs else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
