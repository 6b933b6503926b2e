"""`tasks/` is pure PyTorch: importing every module loads no Ray, MLflow or Arrow; the settings of every
task kind (`tasks/settings/`) load no torch either (each checked in a fresh interpreter, so other tests'
imports cannot hide a violation)."""
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("ray", "mlflow", "pyarrow")
TASKS = Path(__file__).resolve().parents[2] / "tasks"
MODULES = sorted(".".join(p.relative_to(TASKS).with_suffix("").parts).removesuffix(".__init__")
                 for p in TASKS.rglob("*.py") if p.relative_to(TASKS).parts != ("__init__.py",))
SETTINGS = [m for m in MODULES if m.split(".")[0] == "settings"]


def imported(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    """The modules of `roots` that importing `modules` (of `tasks/`) loads, in a fresh interpreter."""
    code = ("import sys\n" + "".join(f"import tasks.{m}\n" for m in modules)
            + f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_tasks_modules_import_no_ray_mlflow_or_arrow():
    assert {"data", "models", "train", "paths", "finetune", "evaluate", "align", "checkpoint"} <= set(MODULES)
    assert imported(MODULES, FORBIDDEN) == []


def test_the_settings_of_every_task_kind_import_no_torch():
    """What the spec and the tables' columns are declared from loads without torch (or numpy, scipy):
    reading a sweep's tables needs none of them."""
    assert {"settings", "settings.data", "settings.models", "settings.train", "settings.finetune", "settings.paths",
            "settings.align"} <= set(SETTINGS)
    assert imported(SETTINGS, ("torch", "numpy", "scipy")) == []
    assert "torch" in imported(["models"], ("torch",))                # (the check sees an import of torch)


def test_the_check_would_catch_a_forbidden_import():
    code = "import sys, pyarrow\nprint([m for m in sys.modules if m.split('.')[0] == 'pyarrow'][:1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pyarrow" in out.stdout
