"""The settings columns of a task (`orchestrator.spec.columns`): one `<section>.<field>` per setting of its
lineage, a setting whose value is null included (null is the value it runs with, not a setting it lacks)."""
from __future__ import annotations

from orchestrator.spec.columns import settings_values
from orchestrator.spec.sweep_spec import load_spec
from tasks.settings.finetune import FinetuneSettings


def test_a_setting_at_null_is_a_column_of_the_task_that_reads_it():
    """`finetune.cue_batch_size: null` means "the batch size": cbft reads it at null as at 64."""
    values = settings_values("finetune", FinetuneSettings(cue_batch_size=None))
    assert "finetune.cue_batch_size" in values and values["finetune.cue_batch_size"] is None
    assert settings_values("finetune", FinetuneSettings(cue_batch_size=64))["finetune.cue_batch_size"] == 64


def test_a_setting_the_user_sets_to_null_that_a_planned_task_reads_is_not_said_to_change_nothing(caplog):
    """The plan warns about a setting the user set that no planned task reads; cbft reads `cue_batch_size`
    whatever its value, so setting it to null (its default, stated) is no such setting."""
    from orchestrator.graph.dag import build_graph, check_settings_read

    spec = load_spec(None, ["finetune.methods=[cbft]", "finetune.cue_batch_size=null"])
    with caplog.at_level("WARNING", logger="orchestrator.graph.dag"):
        assert check_settings_read(spec, build_graph(spec)) == []
    assert "cue_batch_size" not in caplog.text
