"""What a model is set by: its name (built in or your own) and width (`tasks.models` builds it)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks import plugins
from tasks.settings import Settings, identity_dict, setting

BUILT_IN_MODELS = ("small_cnn", "vgg13", "resnet18")   # each the name of its builder in tasks/models.py (MODELS)
BUILT_IN_WIDTHS = {"small_cnn": 16, "vgg13": 64, "resnet18": 64}   # each one's base width when `width` is None


@dataclass(frozen=True)
class ModelSettings(Settings):
    name: str = setting("small_cnn", doc="small_cnn | vgg13 | resnet18, or your own: `package.module:build` "
                        "or an entry point of group mmc_sweep.models (tasks/plugins.py)",
                        id_default="")   # '' is never a name: task ids always name their model
    width: int | None = setting(None, ge=1, le=4096, doc="base width (channels of the first block); "
                                "None: the model's own (" + ", ".join(f"{w} for {n}" for n, w in BUILT_IN_WIDTHS.items())
                                + ")")

    @property
    def label(self) -> str:
        return self.name if self.width is None else f"{self.name}-w{self.width}"

    @property
    def built(self) -> tuple[str, int | None]:
        """What is built: (name, width), a built-in's own width filled in (small_cnn is small_cnn-w16)."""
        return self.name, self.width if self.width is not None else BUILT_IN_WIDTHS.get(self.name)

    def cross_problems(self) -> list[tuple[str, str]]:
        problem = plugins.name_problem(self.name, BUILT_IN_MODELS, plugins.MODEL_GROUP, "model", "package.module:build")
        return [("name", problem)] if problem else []


def model_identity(settings: ModelSettings) -> dict:
    """What identifies a model in a task id: its settings (name always, width when set), and a
    user model's version (tasks.plugins.version)."""
    identity = identity_dict(settings)
    if settings.name not in BUILT_IN_MODELS:
        identity["version"] = plugins.version(settings.name, plugins.MODEL_GROUP)
    return identity
