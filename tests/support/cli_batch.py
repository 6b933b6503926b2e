"""Several `mmc-sweep` commands run one after another in one interpreter, each as `python -m orchestrator
ARGS` runs it (`cli.main`; an exception it lets out is printed with its traceback and exits 1, as the
interpreter would), with its stdout, stderr and exit status kept apart: a test that runs many commands in
one environment (a read-only mount namespace) pays one interpreter's start-up, not one per command.

    python -m tests.support.cli_batch COMMANDS.json RESULTS.json [ROOT]

COMMANDS.json: {name: [argument, ...]}; RESULTS.json gets {name: {"code", "out", "err", "snapshot"}}, the
snapshot (`snapshot(ROOT)`, None without ROOT) taken right after that command; `run_batch` runs it so from a test. The console handler the CLI installs on the
`orchestrator` logger is taken off after each command, so each installs its own as a new process would."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import subprocess
import sys
import traceback
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root`: files with their sha256, directories and others by type."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() \
            else ("dir" if path.is_dir() else "other")
    return out


def run_command(args: list[str]) -> dict:
    """One command through `cli.main`: {"code", "out", "err"}."""
    from orchestrator import cli

    logger = logging.getLogger("orchestrator")
    handlers, level = list(logger.handlers), logger.level
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:              # argparse's errors and --help, as the interpreter exits
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except BaseException:                  # noqa: BLE001 - what `python -m orchestrator` would print
            traceback.print_exc()
            code = 1
        finally:
            logger.handlers[:] = handlers
            logger.setLevel(level)
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}


def run_batch(commands: dict[str, list[str]], work: Path, env: dict, cwd: Path, prefix: tuple[str, ...] = (),
              root: Path | None = None, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    """The module run on `commands` (name -> arguments after `mmc-sweep`) in a new interpreter, behind
    `prefix` (a command that ends by running the rest, e.g. a namespace), its files in `work`: (that
    interpreter's CompletedProcess, name -> {"code", "out", "err", "snapshot"}; {} if it wrote none)."""
    work.mkdir(parents=True, exist_ok=True)
    asked, results = work / "commands.json", work / "results.json"
    asked.write_text(json.dumps(commands))
    proc = subprocess.run([*prefix, sys.executable, "-m", __name__, str(asked), str(results),
                           *([str(root)] if root else [])], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, json.loads(results.read_text()) if results.is_file() else {}


def main(argv: list[str]) -> int:
    commands, results = json.loads(Path(argv[0]).read_text()), Path(argv[1])
    root = Path(argv[2]) if len(argv) > 2 else None
    done = {}
    for name, args in commands.items():
        done[name] = {**run_command(args), "snapshot": snapshot(root) if root else None}
    results.write_text(json.dumps(done))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
