"""The spec a command line asks for: `mmc-sweep run [SPEC] [key=value ...] [--storage ...]`, the file (or
the built-in default sweep) with its overrides, the flags that replace keys validated like those keys;
a key given twice on one command line is refused (`UsageError`, exit 2)."""
from __future__ import annotations

import json
import os
import sys

from orchestrator.errors import UsageError

# the flags that override a spec key, by the key
FLAGS = {"storage": "--storage", "max_concurrent": "--max-concurrent", "mlflow.tracking_uri": "--tracking-uri"}
MAX_NUM_CPUS = 100_000   # --num-cpus of a local Ray


def check_num_cpus(args) -> None:
    """`--num-cpus` of `run` and `claims`, refused before the spec is read or Ray starts."""
    if args.num_cpus is not None and not 1 <= args.num_cpus <= MAX_NUM_CPUS:
        raise UsageError(f"--num-cpus {args.num_cpus} is not allowed; give a whole number of CPUs from 1 to "
                         f"{MAX_NUM_CPUS}")


def unknown_flags(parser, command: str | None, given: list[str]) -> str:
    """argparse's `unrecognized arguments: --no-rep` for `given`, with the flags of `command` (a subcommand
    of `parser`) that each one abbreviates or is close to: flags are written out in full."""
    import argparse
    import difflib

    options = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            options = {o for a in action.choices[command]._actions for o in a.option_strings}
    from orchestrator.spec.schema import TOP_KEYS

    hints = []
    for flag in given:
        name = flag.split("=", 1)[0]
        close = sorted(o for o in options if o.startswith(name)) if name.startswith("--") else []
        close = close or difflib.get_close_matches(name, sorted(options), n=2, cutoff=0.7)
        key = name.lstrip("-").replace("-", "_")
        if close:
            hints.append(f"{flag}: did you mean {' or '.join(close)}?")
        elif key in TOP_KEYS or "." in key:    # `plan --storage X`: a spec key, given as an override
            hints.append(f"{flag}: a spec key is given as `{key}=VALUE` after the spec")
    full = " Flags are written out in full" if any(h.endswith("?") for h in hints) else ""
    return f"unrecognized arguments: {' '.join(given)}" + (f" ({'; '.join(hints)}{full})" if hints else "")


def number(kind: type):
    """argparse's `type=kind`, reading numbers as a spec's YAML does (`knobs.read_number`); a refusal is
    argparse's own `invalid int value: '1_0'`."""
    from orchestrator.knobs import read_number

    def parse(text: str):
        return read_number(kind, text)
    parse.__name__ = kind.__name__
    return parse


def _split_spec_and_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """`run [SPEC] [key=value ...]`: the first item is the spec unless it is an override (a spec file whose
    name holds `=`, `runs/a=b.yaml`, is still the spec)."""
    if items and ("=" not in items[0] or (items[0].endswith((".yaml", ".yml")) and os.path.isfile(items[0]))):
        return items[0], items[1:]
    return None, items


def _refuse_repeats(keys: list[str], flags: dict) -> None:
    """A key set twice on one command line (`seeds=[0] seeds=[1]`, or `--storage A storage=B`) is ambiguous:
    refused, naming the key only (a value may hold a credential)."""
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UsageError(f"{', '.join(f'`{k}`' for k in twice)} given more than once as key=value; give each once")
    both = [k for k in flags if k in keys]
    if both:
        raise UsageError("; ".join(f"`{k}` given both as {FLAGS[k]} and as {k}=..." for k in both) + "; give it once")


def load(items: list[str], flags: dict | None = None):
    """Load and validate a spec with `key=value` overrides and flag overrides (validated like the
    keys they replace)."""
    from orchestrator.spec.sweep_spec import SpecError, load_spec

    spec_path, overrides = _split_spec_and_overrides(items)
    if spec_path is not None and not spec_path.strip():   # `run ""` or `run "$UNSET"`: Path('') is the working directory
        raise UsageError(f"{spec_path!r} is no spec file; give a spec file's path, or no SPEC for the built-in "
                         "default sweep")
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"{item!r}: only the first argument may be a spec file; overrides are key=value "
                             "(e.g. finetune.lam=3)")
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    _refuse_repeats([item.split("=", 1)[0].strip() for item in overrides], given)
    overrides += [f"{key}={json.dumps(value)}" for key, value in given.items()]
    try:
        return load_spec(spec_path, overrides)
    except SpecError as exc:   # name the flag the user typed next to the key it overrides
        problems = list(exc.problems)
        for key in given:
            problems = [p.replace(f"`{key}`:", f"`{key}` ({FLAGS[key]}):", 1) for p in problems]
        raise SpecError(problems, exc.source) from None


def find_plugins_here() -> None:
    """A spec's import paths (`examples.custom_model:build`) resolve from the working directory, as in a
    training script and in every Ray worker (Ray puts the driver's working directory on their path): the
    `mmc-sweep` command's own path starts with its bin directory instead. Last on the path, so nothing in
    the working directory takes the place of an installed package."""
    try:
        here = os.getcwd()
    except OSError:     # a working directory removed under the shell: nothing to find there
        return
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
