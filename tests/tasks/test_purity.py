"""`tasks/` is pure PyTorch: importing every module loads no Ray, MLflow or Arrow (checked in a fresh
interpreter, so other tests' imports cannot hide a violation)."""
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("ray", "mlflow", "pyarrow")
MODULES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "tasks").glob("*.py") if p.stem != "__init__")


def test_tasks_modules_import_no_ray_mlflow_or_arrow():
    assert {"data", "models", "train", "paths", "finetune", "evaluate", "align", "checkpoint"} <= set(MODULES)
    code = ("import sys\n" + "".join(f"import tasks.{m}\n" for m in MODULES)
            + f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\nprint(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"tasks/ pulled in: {out.stdout.strip()}"


def test_the_check_would_catch_a_forbidden_import():
    code = "import sys, pyarrow\nprint([m for m in sys.modules if m.split('.')[0] == 'pyarrow'][:1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pyarrow" in out.stdout
