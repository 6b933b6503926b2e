"""A rerunnable mutation check: does the test suite catch the bugs that matter?

Each mutant changes one line of a core module (the bug it stands for is named); the script copies the
committed tree (HEAD; `--working-tree`: with uncommitted changes) to a temporary directory (the
shared tree is never touched), runs the tests that should
catch it there, and reports the mutant *killed* (a test failed) or *survived* (every test passed: the
suite does not notice that bug). Before the mutants, the same tests run on the unmutated copy: a test
that already fails there cannot judge anything (`baseline fails`).

    python scripts/mutants.py                 # every mutant; prints a table
    python scripts/mutants.py --only M05 M11  # some of them
    python scripts/mutants.py --list          # the mutants and their tests
    python scripts/mutants.py --write         # also write the result into docs/MUTANTS.md

A mutant whose line is no longer in its file is reported `stale` (the code moved on: update it here).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "MUTANTS.md"
TIMEOUT_S = 1800


@dataclass(frozen=True)
class Mutant:
    id: str
    bug: str                     # what the mutant stands for
    path: str                    # file, relative to the repository
    find: str                    # the exact text of the line part to change (must occur `occurrence`+1 times)
    replace: str
    tests: tuple[str, ...]       # pytest node ids that should fail
    occurrence: int = 0          # which occurrence of `find` (0: the first)


T_RESUME = "tests/orchestrator/run/test_resume.py::test_a_stopped_training_task_resumes_after_its_last_epoch"
T_CLAIMS = "tests/orchestrator/run/test_faults.py::test_readme_fault_claim"
T_GRAPH = "tests/orchestrator/graph/test_graph.py"
T_GOLDEN = "tests/orchestrator/graph/test_golden.py"
T_FT = "tests/tasks/test_science_finetune.py"
T_PATHS = "tests/tasks/test_science_paths.py"
T_SCIENCE_ALIGN = "tests/tasks/test_science_align.py"
T_DATA = "tests/tasks/test_science_data.py"
T_WIRING = "tests/orchestrator/run/test_science_wiring.py"
T_CBFT_RECIPE = f"{T_FT}::test_cbft_family_matches_its_recipe_step_by_step"
T_MIDPOINT = f"{T_PATHS}::test_train_midpoint_matches_the_papers_control_point_training"
T_PATH_ROWS = f"{T_PATHS}::test_every_row_of_a_path_is_the_hand_evaluated_point_at_its_alpha"
T_MATCHING = f"{T_SCIENCE_ALIGN}::test_activation_matching_solves_the_assignment_of_the_summed_correlations_of_every_point"
T_TRACE = "tests/tasks/test_permutation_trace.py"
T_ALIGN = "tests/tasks/test_align.py"
T_READS = "tests/orchestrator/graph/test_identity.py::test_every_setting_a_task_reads_is_in_its_id"
T_UNREAD = "tests/orchestrator/graph/test_identity.py::test_every_setting_in_a_task_id_is_read_by_it_or_its_ancestors"
T_SINKS = "tests/test_security.py::test_no_sink_of_a_run_holds_a_credential"
T_LOCK = "tests/orchestrator/storage/test_lock.py"
T_STATS = "tests/orchestrator/report/test_stats.py"
T_CLAIMS_R = "tests/orchestrator/report/test_claims.py"
T_CMP = "tests/orchestrator/report/test_comparisons.py"
T_VERDICTS = "tests/orchestrator/report/test_verdicts.py"
T_MAP = "tests/orchestrator/report/test_mechanism_map.py"
T_MAP_RULES = "tests/orchestrator/report/test_mechanism_map_rules.py"
T_SCIENCE_TRAIN = "tests/tasks/test_science_train.py"
T_EVAL = "tests/tasks/test_evaluate.py"
T_BARRIERS = ("tests/tasks/test_paths.py::test_barriers_match_hand_computed_values",
              f"{T_PATHS}::test_barriers_equal_the_definitions_on_random_curves")
T_TRAIN = "tests/tasks/test_train.py"

MUTANTS = [
    Mutant("M01", "pretrain ignores its saved resume state (resume set to None in work.py)",
           "orchestrator/run/work.py", "resume = env.resume_state()", "resume = None",
           (f"{T_RESUME}[pretrain-None-1-4]",)),
    Mutant("M02", "finetune ignores its saved resume state",
           "orchestrator/run/work.py", "resume = env.resume_state()", "resume = None",
           (f"{T_RESUME}[finetune-lpft-3-5]",), occurrence=1),
    Mutant("M03", "midpoint ignores its saved resume state",
           "orchestrator/run/work.py", "resume = env.resume_state()", "resume = None",
           (f"{T_RESUME}[midpoint-None-1-3]",), occurrence=2),
    Mutant("M04", "the in-process resume state is never loaded (resume.py returns None)",
           "orchestrator/run/resume.py", "return log.state({name: storage.read_bytes(p) for name, p in paths.items()})",
           "return None", (f"{T_RESUME}[pretrain-None-1-4]",)),
    Mutant("M05", "a Tune trial never attaches the per-epoch resume state",
           "orchestrator/run/work.py",
           "attach_storage_resume(env, layout, task.kind, task.id, env.resume_log, epochs=planned_epochs(task))", "pass",
           (f"{T_RESUME}[pretrain-None-1-4]",)),
    Mutant("M06", "Ray Train workers ignore their checkpoint (resume state None in distributed.py)",
           "orchestrator/run/distributed.py", "    save = env.on_epoch\n", "    save, env.resume_state = env.on_epoch, (lambda: None)\n",
           ("tests/orchestrator/run/test_distributed.py::test_killed_training_worker_is_replaced_and_the_task_resumes_from_its_checkpoint",)),
    Mutant("M07", "a torn resume state raises instead of starting the task over",
           "orchestrator/run/resume.py", "except (CorruptCheckpointError, KeyError, TypeError, ValueError):",
           "except (KeyError,):", ("tests/orchestrator/run/test_resume.py::test_a_torn_resume_state_starts_the_task_over",
                                   f"{T_CLAIMS}[a torn resume checkpoint starts the task over]")),
    Mutant("M08", "each no-cue model paired with itself (nocue~nocue barriers 0 by construction)",
           "orchestrator/graph/dag.py", "elif design == vocab.INDEPENDENT:",
           "elif design == vocab.INDEPENDENT and pair != vocab.NOCUE_NOCUE:", (T_GOLDEN, T_GRAPH)),
    Mutant("M09", "the main cue~nocue pair shares its initialisation (the same-init control as the main design)",
           "orchestrator/graph/dag.py", "if design == vocab.SAME_INIT:", "if True:", (T_GOLDEN, T_GRAPH)),
    Mutant("M10", "the same-type partner drawn from the primary's seed stream (a model paired with itself)",
           "orchestrator/graph/dag.py", 'seed = init_seed(s, p, "b")', 'seed = init_seed(s, p, "a")', (T_GOLDEN, T_GRAPH)),
    Mutant("M11", "task ids shortened (every stored sweep orphaned)",
           "orchestrator/graph/dag.py", "hexdigest()[:16]", "hexdigest()[:12]", (T_GOLDEN, T_GRAPH)),
    Mutant("M12", "settings identity: 1 and 1.0 no longer the same value (a clause of the equality removed)",
           "tasks/settings/__init__.py", "if isinstance(a, (int, float)) and isinstance(b, (int, float)):", "if False:",
           (T_GOLDEN, T_GRAPH)),
    Mutant("M13", "settings identity: True equal to 1 (the bool clause removed)",
           "tasks/settings/__init__.py", "if isinstance(a, bool) or isinstance(b, bool):", "if False:", (T_GOLDEN,)),
    Mutant("M14", "a default changed silently (CBFT's lam 1.0 -> 2.0; cached outputs would be reused)",
           "tasks/settings/finetune.py", "lam: float = setting(1.0,", "lam: float = setting(2.0,", (T_GOLDEN,)),
    Mutant("M15", "CBFT drops lam (the invariance weight)",
           "tasks/finetune.py", "loss = loss + self.settings.lam * class_mean_invariance(",
           "loss = loss + class_mean_invariance(",
           ("tests/tasks/test_finetune.py::test_cbft_objective_matches_a_hand_computation_with_its_own_lambda_and_margin",)),
    Mutant("M16", "CBFT drops the margin of its barrier loss",
           "tasks/finetune.py", "return (self.settings.margin - F.cross_entropy(logits, y)).abs()",
           "return (1.0 - F.cross_entropy(logits, y)).abs()",
           ("tests/tasks/test_finetune.py::test_cbft_objective_matches_a_hand_computation_with_its_own_lambda_and_margin",)),
    Mutant("M17", "CBFT's cue batches drawn from the clean subset",
           "tasks/finetune.py", "return CBFTObjective(model, clean, cue_set(data, index), settings,",
           "return CBFTObjective(model, clean, clean, settings,",
           ("tests/tasks/test_finetune.py::test_the_cue_set_is_exactly_the_training_set_minus_the_clean_subset",)),
    Mutant("M18", "alignment no longer switches the models to eval mode (permutations from batch statistics)",
           "tasks/align.py", "model_a.eval(), model_b.eval()", "pass",
           ("tests/tasks/test_align.py::test_align_of_models_in_train_mode_matches_eval_mode_and_keeps_their_bn_statistics",)),
    Mutant("M19", "a missing output file is not checked (the run would read a missing file)",
           "orchestrator/results/outputs.py", "            if stamp is None:\n                return False, f\"missing {path}\"",
           "            if False:\n                return False, f\"missing {path}\"",
           (f"{T_CLAIMS}[a missing output file is recomputed]",)),
    Mutant("M20", "the missing `tasks` row of a task finished before the driver died is never written",
           "orchestrator/run/sweep.py", "recorder.record(task_id)   # a driver killed between done.json and the tasks row",
           "pass",
           (f"{T_CLAIMS}[the tasks row missing after the driver died between marker and row is written on rerun]",)),
    Mutant("M21", "Ctrl-C exits 1 instead of 130",
           "orchestrator/cli.py", "return EXIT_INTERRUPTED", "return EXIT_TASKS_FAILED",
           ("tests/orchestrator/run/test_faults.py::test_driver_interrupted_then_killed_mid_task_resumes_each_time",)),
    Mutant("M22", "max_concurrent does not bound the trials in flight (more tasks at once than asked for)",
           "orchestrator/run/capacity.py", "return max(1, min(slots, self._max) if self._max else slots)",
           "return max(1, slots)",
           ("tests/orchestrator/run/test_schedule.py::test_ray_run_respects_max_concurrent_and_dependencies",
            "tests/orchestrator/run/test_capacity.py::test_with_an_autoscaler_trials_wait_for_the_nodes_it_can_start")),
    Mutant("M23", "a failed task's descendants are not skipped",
           "orchestrator/run/state.py", "skipped = self._skip_descendants(task_id) if status == FAILED else []",
           "skipped = []",
           ("tests/orchestrator/run/test_schedule.py::test_a_failure_skips_exactly_the_pending_descendants",)),
    Mutant("M24", "two orchestrator modules import each other (work <-> distributed)",
           "orchestrator/run/work.py", "from orchestrator.results import outputs, schemas, tables",
           "from orchestrator.results import outputs, schemas, tables\nfrom orchestrator.run import distributed",
           ("tests/orchestrator/test_imports.py",)),
    Mutant("M25", "a path kind spelled as a literal outside vocab.py",
           "orchestrator/run/work.py", 'if cfg["path_kind"] == vocab.QUADRATIC:', 'if cfg["path_kind"] == "quadratic":',
           ("tests/orchestrator/test_vocab.py::test_no_vocabulary_word_is_spelled_as_a_literal_outside_vocab[run/work.py]",)),
    Mutant("M26", "a garbled done.json counted as finished (markers parsed without their check)",
           "orchestrator/results/outputs.py", "marker, reason = _marker(layout, kind, task_id, allowed, marker_path, raw)", "marker, reason = {'files': {}}, ''",
           (f"{T_CLAIMS}[a garbled done.json is recomputed]",)),
    Mutant("M27", "the permutation tracer forgets to tie the groups of a residual add (ResNet stages split)",
           "tasks/permutation.py", "return _Value(self._union(a.group, b.group, node), a.ndim or b.ndim, a.flat and b.flat)",
           "return _Value(a.group, a.ndim or b.ndim, a.flat and b.flat)",
           (f"{T_ALIGN}::test_permute_state_keeps_the_function", f"{T_TRACE}::test_a_resnet_stage_is_one_group_across_its_residual_adds")),
    Mutant("M28", "the traced spec permutes the model's output (logits) channels",
           "tasks/permutation.py", "                    self._union(self.values[arg].group, _FIXED, node)", "                    pass",
           (f"{T_ALIGN}::test_permute_state_keeps_the_function",)),
    Mutant("M29", "the tracer flattens channels together with positions (flatten before 1x1 pooling accepted)",
           "tasks/permutation.py", "if start == 0 or start == 1 and not x.spatial_free:", "if start == 0:",
           (f"{T_TRACE}::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M30", "the tracer permutes a grouped convolution like a dense one",
           "tasks/permutation.py", "if m.groups != 1:", "if False:",
           (f"{T_TRACE}::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M31", "a ReLU module that runs twice is used as a watch point (its hook sees the wrong channels)",
           "tasks/permutation.py", "if self.tracer.calls[m] == 1)", "if True)",
           (f"{T_TRACE}::test_a_traced_permutation_keeps_the_function_and_alignment_undoes_it",)),
    Mutant("M32", "traced entries in execution order (a ResNet's groups reordered: weight matching finds other permutations)",
           "tasks/permutation.py", "stack.extend((arg, False) for arg in node.all_input_nodes if arg not in rank)",
           "stack.extend((arg, False) for arg in reversed(node.all_input_nodes) if arg not in rank)",
           (f"{T_TRACE}::test_traced_specs_of_the_builtins_equal_the_hand_written_ones_in_the_same_order",)),
    Mutant("M33", "the spec checks accept any model of your own for aligned paths (alignment_problem does not trace)",
           "tasks/models.py", "trace_permutation_spec(model)", "None",
           (f"{T_TRACE}::test_alignment_problem_names_a_user_model_the_tracer_refuses",)),
    # identity: what a task reads against what its id holds (M40+: numbered apart from the science mutants)
    Mutant("M40", "naive fine-tuning reads a setting its id omits (`margin`; a sweep over it shares one result)",
           "tasks/finetune.py", 'cross_entropy_objective(clean, settings.batch_size, derive_seed(seed, "finetune-naive"))',
           'cross_entropy_objective(clean, settings.batch_size if settings.margin >= 0 else 1, '
           'derive_seed(seed, "finetune-naive"))', (T_READS,)),
    Mutant("M41", "the ablations without the invariance term read and use `lam` (not in their ids)",
           "tasks/finetune.py", "invariant = self.invariance and epoch >= self.settings.warmup_epochs",
           "invariant = epoch >= self.settings.warmup_epochs", (T_READS,)),
    Mutant("M42", "a setting a method reads dropped from its task id (fine-tuning `lr`)",
           "orchestrator/graph/dag.py", "identity_dict(self.v.finetune).items() if k in used}",
           'identity_dict(self.v.finetune).items() if k in used and k != "lr"}', (T_READS,)),
    Mutant("M43", "a data setting dropped from every data identity (`eval_split`)",
           "tasks/settings/data.py", 'if k != "root"}', 'if k not in ("root", "eval_split")}', (T_READS,)),
    Mutant("M44", "a setting no method of its kind reads put in naive fine-tuning's id (`lam`: needless retraining)",
           "tasks/settings/finetune.py", "        return _OPTIM_FIELDS\n", '        return _OPTIM_FIELDS + ("lam",)\n', (T_UNREAD,)),
    # redaction
    Mutant("M45", "a failed task's error stored in the `tasks` table with its credential",
           "orchestrator/run/recording.py", '"error": redact(error) if error else error,', '"error": error,', (T_SINKS,)),
    Mutant("M46", "a credential printed in a warning (batched MLflow logging failed)",
           "orchestrator/run/tracking.py", "log.warning(redact(message))", "log.warning(message)",
           (T_SINKS, "tests/orchestrator/run/test_tracking.py::test_the_trackers_warnings_are_redacted_in_the_log_record_itself")),
    Mutant("M47", "the command line shows Python warnings unredacted",
           "orchestrator/cli.py", "    redact_warnings()\n", "    pass\n", (T_SINKS,)),
    # the lock across hosts
    Mutant("M48", "a driver takes over the lock of a live driver on another host (its pid is dead here)",
           "orchestrator/storage/lock.py", "if isinstance(pid, int) and same_machine(other):",
           "if isinstance(pid, int):", (T_LOCK,)),
    Mutant("M49", "a live lease counted as expired (any lock with a lease taken over)",
           "orchestrator/storage/lock.py", "return left is not None and left < 0", "return left is not None", (T_LOCK,)),
    Mutant("M50", "the same host name taken for the same machine (boot id and pid namespace ignored)",
           "orchestrator/storage/lock.py", "    return all(other.get(key) is None or other.get(key) == mine",
           "    return True or all(other.get(key) is None or other.get(key) == mine", (T_LOCK,)),
    # the science (issue 21): a step of a recipe skipped, the wrong models' data, part of a stage, the wrong images
    Mutant("M60", "llrt keeps the pretrained head (never re-initialised)",
           "tasks/finetune.py", "reset_head(model.head, seed)", "None",
           (f"{T_FT}::test_llrt_trains_a_fresh_seeded_head_on_eval_mode_features_of_the_frozen_backbone",
            f"{T_FT}::test_llrt_result_does_not_depend_on_the_pretrained_head")),
    Mutant("M61", "llrt's frozen-backbone features computed in train mode (batch statistics)",
           "tasks/finetune.py", "    model.eval()\n    chunks = []", "    model.train()\n    chunks = []",
           (f"{T_FT}::test_llrt_trains_a_fresh_seeded_head_on_eval_mode_features_of_the_frozen_backbone",)),
    Mutant("M62", "lpft skips its probe phase (naive fine-tuning only)",
           "tasks/finetune.py", "if resume is None or resume.epoch < head_epochs:", "if False:",
           (f"{T_FT}::test_lpft_probes_the_head_on_the_frozen_backbone_then_trains_all_weights",)),
    Mutant("M63", "naive fine-tunes on the subset's cued images instead of its clean ones",
           "tasks/finetune.py", "_, clean = clean_subset(data, settings.clean_subset, seed)",   # in finetune_naive
           "index, clean = clean_subset(data, settings.clean_subset, seed); clean = data.train.subset(index)",
           (f"{T_FT}::test_naive_trains_all_weights_with_sgd_on_the_clean_subset",), occurrence=0),
    Mutant("M64", "cbft drops its invariance term (the barrier ablation run as cbft)",
           "tasks/finetune.py", "        elif invariant:\n", "        elif False:\n", (f"{T_CBFT_RECIPE}[cbft]",)),
    Mutant("M65", "cbft ignores its warm-up epochs",
           "tasks/finetune.py", "epoch >= self.settings.warmup_epochs", "epoch >= 0", (f"{T_CBFT_RECIPE}[cbft]",)),
    Mutant("M66", "cbft's theta_pre follows theta (a view, not a copy: the path point collapses onto theta)",
           "tasks/finetune.py", "self.pretrained = ({k: p.detach().clone()", "self.pretrained = ({k: p.detach()",
           (f"{T_CBFT_RECIPE}[cbft]",)),
    Mutant("M67", "cbft's barrier at (1-t) theta_pre + t theta (t and 1-t swapped)",
           "tasks/finetune.py", "t * self.pretrained[name] + (1 - t) * p", "(1 - t) * self.pretrained[name] + t * p",
           (f"{T_CBFT_RECIPE}[cbft]",)),
    Mutant("M68", "naive_cued takes cbft's barrier step instead of CE on the cue batch",
           "tasks/settings/finetune.py", '"naive_cued": ("cue_ce", False),', '"naive_cued": ("barrier", False),',
           (f"{T_CBFT_RECIPE}[naive_cued]",)),
    Mutant("M69", "the linear midpoint initialised at endpoint A",
           "tasks/paths.py", "init = interpolate(state_a, state_b, 0.5)", "init = interpolate(state_a, state_b, 0.0)",
           (f"{T_MIDPOINT}[linear]",)),
    Mutant("M70", "the fresh midpoint initialised with the template model's weights (unseeded)",
           "tasks/paths.py", "init = fresh_state(model, seed)", "init = {k: v.clone() for k, v in model.state_dict().items()}",
           (f"{T_MIDPOINT}[fresh]",)),
    Mutant("M71", "the midpoint trained on the curve with A and B swapped",
           "tasks/paths.py", "objective = BezierObjective(state_a, state_b, train,",
           "objective = BezierObjective(state_b, state_a, train,", (f"{T_MIDPOINT}[fresh]",)),
    Mutant("M72", "the midpoint trained on endpoint A's training set only",
           "orchestrator/run/work.py",
           "train = data_lib.Split(torch.cat([d.train.x for d in datas]), torch.cat([d.train.y for d in datas]))",
           "train = datas[0].train",
           (f"{T_WIRING}::test_the_midpoint_trains_on_both_endpoints_training_sets_each_at_its_cue_proportion",)),
    Mutant("M73", "a ResNet stage matched on its last point only",
           "tasks/align.py", "score = sum(stats[m].correlation() for m in mods)", "score = stats[mods[-1]].correlation()",
           (f"{T_MATCHING}[resnet18-8-shape2]",)),
    Mutant("M74", "activation statistics of the first batch of images only",
           "tasks/align.py", "x[start:start + batch_size]", "x[:batch_size]", (f"{T_MATCHING}[small_cnn-4-shape0]",)),
    Mutant("M75", "channel correlation not centred (raw second moments)",
           "tasks/align.py", "cov = sab - sa[:, None] * sb[None, :]", "cov = sab", (T_MATCHING,)),
    Mutant("M76", "activation matching on the cued training images",
           "orchestrator/run/work.py", "x = data.train_clean.x[: settings.samples].float()",
           "x = data.train.x[: settings.samples].float()",
           (f"{T_WIRING}::test_activation_matching_sees_the_clean_training_images",)),
    Mutant("M77", "weight matching scores BN running statistics too",
           "tasks/align.py", "return [(n, ax) for n, ax in spec.groups[group] if not n.endswith(_RUNNING_STATS)]",
           "return list(spec.groups[group])",
           (f"{T_SCIENCE_ALIGN}::test_weight_matching_reads_weights_and_bn_affine_parameters_but_not_running_statistics",)),
    Mutant("M78", "the loss chord drawn to the wrong endpoints (L(1) at alpha 0)",
           "tasks/paths.py", '("loss", "chord"): max(v - ((1 - t) * loss[0] + t * loss[-1])',
           '("loss", "chord"): max(v - ((1 - t) * loss[-1] + t * loss[0])',
           (f"{T_PATHS}::test_barriers_equal_the_definitions_on_random_curves",)),
    Mutant("M79", "BN re-estimation pools batches without the between-batch variance",
           "tasks/paths.py", "self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)", "self.m2 = self.m2 + m2",
           (f"{T_PATHS}::test_reset_bn_sets_every_layers_statistics_to_the_moments_of_its_input_over_the_sample",)),
    Mutant("M80", "the quadratic path evaluated with the midpoint and B swapped",
           "tasks/paths.py", "state = bezier(state_a, midpoint, state_b, alpha)",
           "state = bezier(state_a, state_b, midpoint, alpha)", (f"{T_PATH_ROWS}[quadratic]",)),
    Mutant("M81", "the aligned path evaluated against the unaligned B",
           "orchestrator/run/work.py", 'state_b = _load_state(env, cfg["via"])   # model B permuted onto A',
           "state_b = _load_state(env, id_b)",
           (f"{T_WIRING}::test_a_path_runs_from_a_to_b_through_its_via_with_bn_from_clean_training_images",)),
    Mutant("M82", "cue quotas rounded half to even (2.5 -> 2 cued samples)",
           "tasks/data.py", "quota = torch.floor(proportion * counts.double() + 0.5).long()",
           "quota = torch.round(proportion * counts.double()).long()",
           (f"{T_DATA}::test_each_class_gets_p_times_its_size_rounded_half_up",)),
    Mutant("M83", "randcue never paints the true class (a shifted label, not a uniform one)",
           "tasks/data.py", "random_labels = torch.randint(0, num_classes, (y.numel(),), generator=gen)",
           "random_labels = (y + torch.randint(1, num_classes, (y.numel(),), generator=gen)) % num_classes",
           (f"{T_DATA}::test_randcue_paints_a_uniformly_random_class_true_class_included",)),
    # -- the verdict machinery: intervals, tests, guards, verdict rules, claims, mechanism map --
    Mutant("M84", "a t-interval with n degrees of freedom instead of n - 1 (too narrow)",
           "orchestrator/report/stats.py", "half = t_quantile(float(level), n - 1) * sem",
           "half = t_quantile(float(level), n) * sem",
           (f"{T_STATS}::test_t_interval_is_the_textbook_formula_and_nan_below_two",)),
    Mutant("M85", "a 95% interval from the one-sided quantile (a 90% interval)",
           "orchestrator/report/stats.py", "return float(scipy_stats.t.ppf(0.5 + level / 2, df))",
           "return float(scipy_stats.t.ppf(level, df))",
           (f"{T_STATS}::test_t_interval_is_the_textbook_formula_and_nan_below_two",)),
    Mutant("M86", "barrier summaries pool the pairs of several cue proportions",
           "orchestrator/report/stats.py", 'EXTRA_GROUP_KEYS = ("dataset", "model", "cue_proportion")',
           'EXTRA_GROUP_KEYS = ("dataset", "model")',
           (f"{T_STATS}::test_summarize_keeps_cue_proportions_apart",)),
    Mutant("M87", "the claims of one cue proportion judged on the seeds of every proportion",
           "orchestrator/report/claims.py", "lambda v: stats.is_no_cue(v) or v == p",
           "lambda v: stats.is_no_cue(v) or v > 0",
           (f"{T_CLAIMS_R}::test_each_cue_proportion_is_judged_on_its_own_seeds",)),
    Mutant("M88", "the accuracy floor tested with < (a path exactly at chance + floor_acc counted as testable)",
           "orchestrator/report/comparisons.py", "min_acc <= chance + floor_acc", "min_acc < chance + floor_acc",
           (f"{T_CMP}::test_the_chance_floor_is_accuracy_near_one_over_k_or_loss_near_ln_k",)),
    Mutant("M89", "the chance loss taken as 1/K instead of ln K (the loss floor never reached)",
           "orchestrator/report/comparisons.py", "chance_loss = math.log(1.0 / chance) if chance > 0",
           "chance_loss = 1.0 / chance if chance > 0",
           (f"{T_CLAIMS_R}::test_a_saturated_comparison_is_not_testable_never_does_not_hold",
            f"{T_CMP}::test_the_chance_floor_is_accuracy_near_one_over_k_or_loss_near_ln_k")),
    Mutant("M90", "an interval straddling 0 with a negative mean decided 'below' (high < 0 -> mean < 0)",
           "orchestrator/report/comparisons.py", "if diff.high < 0:", "if diff.mean < 0:",
           (f"{T_CMP}::test_superiority_is_decided_by_the_interval_not_the_mean",)),
    Mutant("M91", "equivalence decided on the mean alone (abs(mean) < margin), not the interval",
           "orchestrator/report/comparisons.py", "if -margin < diff.low and diff.high < margin:",
           "if abs(diff.mean) < margin:",
           (f"{T_CMP}::test_equivalence_needs_the_whole_interval_inside_the_margin",)),
    Mutant("M92", "a paired difference with n degrees of freedom instead of n - 1",
           "orchestrator/report/comparisons.py", "float(max(n - 1, 1)), level, sd)", "float(max(n, 1)), level, sd)",
           (f"{T_CMP}::test_a_paired_difference_is_the_one_sample_t_interval_of_the_per_seed_differences",)),
    Mutant("M93", "two common seeds compared as independent groups (pairing needs 3)",
           "orchestrator/report/comparisons.py", "if len(common) >= 2 and a.index.is_unique",
           "if len(common) > 2 and a.index.is_unique",
           (f"{T_CMP}::test_two_common_seeds_are_paired_with_one_degree_of_freedom",)),
    Mutant("M94", "Welch's degrees of freedom with nb instead of nb - 1",
           "orchestrator/report/comparisons.py", "vb ** 2 / (nb - 1)", "vb ** 2 / nb",
           (f"{T_CMP}::test_two_independent_groups_use_welchs_degrees_of_freedom",)),
    Mutant("M95", "the power rule's detectable effect from a one-sided quantile",
           "orchestrator/report/comparisons.py",
           "return (t_quantile(0.5 + diff.level / 2, diff.df) + t_quantile(power, diff.df)) * diff.se",
           "return (t_quantile(diff.level, diff.df) + t_quantile(power, diff.df)) * diff.se",
           (f"{T_CMP}::test_the_detectable_effect_is_the_two_sided_power_formula",
            f"{T_CMP}::test_the_power_rule_names_an_underpowered_comparison_by_the_two_sided_formula")),
    Mutant("M96", "a permutation test decided at alpha per tail instead of alpha / 2",
           "orchestrator/report/comparisons.py", "half = (1.0 - level) / 2.0", "half = 1.0 - level",
           (f"{T_CMP}::test_a_permutation_test_decides_each_tail_at_half_alpha",)),
    Mutant("M97", "a group with a ✓ and a ✗ decided ✓ (the group rule's order)",
           "orchestrator/report/verdicts.py", "for o in (NO, OVERLAP, YES) if o in outcomes",
           "for o in (YES, NO, OVERLAP) if o in outcomes",
           (f"{T_VERDICTS}::test_a_groups_outcome_is_its_worst_decided_check",
            f"{T_VERDICTS}::test_a_group_with_a_check_decided_the_other_way_makes_the_claim_fail")),
    Mutant("M98", "a required group that is not testable ignored (the optional rule inverted)",
           "orchestrator/report/verdicts.py", "o == UNTESTABLE and g not in self.optional",
           "o == UNTESTABLE and g in self.optional",
           (f"{T_VERDICTS}::test_a_required_group_not_testable_makes_the_claim_not_testable_an_optional_one_does_not",
            f"{T_CLAIMS_R}::test_every_claim_holds_when_the_data_separate_it")),
    Mutant("M99", "the chance floor judged on the mean accuracy and loss along the path, not its extremes",
           "orchestrator/report/verdicts.py", 'agg(lo=("acc", "min"), hi=("loss", "max"))',
           'agg(lo=("acc", "mean"), hi=("loss", "mean"))',
           (f"{T_VERDICTS}::test_the_chance_floor_reads_each_pairs_lowest_accuracy_and_highest_loss_averaged_over_pairs",
            f"{T_CLAIMS_R}::test_a_saturated_comparison_is_not_testable_never_does_not_hold")),
    Mutant("M100", "(b) keeps reliance judged against the whole parent's reliance (keep_fraction dropped)",
           "orchestrator/report/claims.py", "r.keep_fraction * parent.get(RANDIMG, EMPTY)",
           "parent.get(RANDIMG, EMPTY)",
           (f"{T_CLAIMS_R}::test_naive_fine_tuning_keeps_the_reliance_above_the_fraction_of_its_parents",
             f"{T_CLAIMS_R}::test_every_claim_holds_when_the_data_separate_it")),
    Mutant("M101", "(c) 'leaves the basin' judged on the barrier sets instead of the basin sets",
           "orchestrator/report/claims.py", "    for eval_set in r.basin_sets:", "    for eval_set in r.barrier_sets:",
           (f"{T_CLAIMS_R}::test_leaving_the_basin_is_judged_on_the_basin_sets_only",)),
    Mutant("M102", "the chance floor checked on the higher side of a barrier comparison",
           "orchestrator/report/claims.py", "lo_acc, hi_loss = s.extremes(*lower, eval_set)",
           "lo_acc, hi_loss = s.extremes(*higher, eval_set)",
           (f"{T_CLAIMS_R}::test_a_saturated_comparison_is_not_testable_never_does_not_hold",)),
    Mutant("M103", "(d) 'alignment works for the controls' judged on their mean, not their upper bound",
           "orchestrator/report/claims.py", "not control.ci_high < r.aligned_works",
           "not control.mean < r.aligned_works",
           (f"{T_CLAIMS_R}::test_after_alignment_is_not_testable_where_the_controls_upper_bound_reaches_the_rule",)),
    Mutant("M104", "the claims' randimg reliance without chance subtracted",
           "orchestrator/report/verdicts.py", 'out[RANDIMG] = acc["randimg"] - self.chance',
           'out[RANDIMG] = acc["randimg"]',
           (f"{T_VERDICTS}::test_the_reliance_indices_are_randimg_minus_chance_and_nocue_minus_randcue",)),
    Mutant("M105", "mechanism map: chord barriers below 0 kept negative (not counted as 0)",
           "orchestrator/report/mechanism_map.py", "max(float(value), 0.0)", "float(value)",
           (f"{T_MAP_RULES}::test_barriers_below_zero_count_as_zero_and_a_pair_measured_twice_is_their_mean",)),
    Mutant("M106", "mechanism map: a model exactly at the reliance cut counted as relying on the cue",
           "orchestrator/report/mechanism_map.py", "groups = reliance[known] > rules.reliance_cut",
           "groups = reliance[known] >= rules.reliance_cut",
           (f"{T_MAP_RULES}::test_a_model_exactly_at_the_reliance_cut_does_not_rely_on_the_cue",)),
    Mutant("M107", "permutation test: the smallest p-value ignores mirror-image relabelings of equal groups",
           "orchestrator/report/mechanism_map.py", "min_p = (2.0 if 2 * k1 == k else 1.0) / total",
           "min_p = 1.0 / total",
           (f"{T_MAP}::test_permutations_are_exact_when_few_and_respect_group_sizes",
             f"{T_MAP_RULES}::test_the_smallest_p_value_counts_mirror_relabelings_of_equal_groups_once",
             f"{T_MAP_RULES}::test_four_and_four_models_cannot_reach_half_alpha")),
    Mutant("M108", "evaluation in training mode (BN batch statistics, running statistics updated)",
           "tasks/evaluate.py", "model.eval()\n    loss_sum", "model.train()\n    loss_sum",
           (f"{T_EVAL}::test_evaluate_matches_whole_set_reference_and_restores_mode",)),
    Mutant("M109", "joined evaluation divides each set's correct count by all sets' samples",
           "tasks/evaluate.py", '"acc": int(correct[part].sum()) / n if good',
           '"acc": int(correct[part].sum()) / len(joined.y) if good',
           (f"{T_EVAL}::test_evaluate_joined_gives_each_set_what_evaluate_gives_it_alone",)),
    Mutant("M110", "the worse-endpoint loss barrier from the mean loss along the path instead of its peak",
           "tasks/paths.py", '("loss", "worse_endpoint"): max(loss) - max(loss[0], loss[-1])',
           '("loss", "worse_endpoint"): sum(loss) / len(loss) - max(loss[0], loss[-1])', T_BARRIERS),
    Mutant("M111", "the worse-endpoint accuracy barrier measured from the better endpoint",
           "tasks/paths.py", '("acc", "worse_endpoint"): min(acc[0], acc[-1]) - min(acc)',
           '("acc", "worse_endpoint"): max(acc[0], acc[-1]) - min(acc)', T_BARRIERS),
    Mutant("M112", "the loss chord barrier taken as the peak above the worse endpoint",
           "tasks/paths.py", '("loss", "chord"): max(v - ((1 - t) * loss[0] + t * loss[-1]) for t, v in zip(ts, loss))',
           '("loss", "chord"): max(loss) - max(loss[0], loss[-1])', T_BARRIERS),
    Mutant("M113", "the path's randcue reliance with its sign flipped",
           "tasks/paths.py", 'randcue = acc["nocue"] - acc["randcue"]', 'randcue = acc["randcue"] - acc["nocue"]',
           ("tests/tasks/test_paths.py::test_mechanism_along_the_path_agreement_with_each_endpoint_and_cue_reliance",)),
    Mutant("M114", "training epochs run in eval mode (BN statistics frozen at their initial values)",
           "tasks/train.py", "model.train()\n        loss_sum = correct = count = 0.0",
           "model.eval()\n        loss_sum = correct = count = 0.0",
           (f"{T_SCIENCE_TRAIN}::test_every_epoch_trains_in_train_mode_and_updates_the_batchnorm_running_statistics",)),
    Mutant("M115", "an epoch's training loss summed over batches without their sizes (a wrong mean)",
           "tasks/train.py", "loss_sum += value * int(n)", "loss_sum += value",
           (f"{T_SCIENCE_TRAIN}::test_an_epochs_loss_and_accuracy_are_means_over_samples_not_over_batches",)),
    Mutant("M116", "randcue draws its cue class among the first ten classes only (CIFAR-100's other ninety never painted)",
           "tasks/data.py", "random_labels = torch.randint(0, num_classes,",
           "random_labels = torch.randint(0, 10,",
           ("tests/tasks/test_data.py::test_cifar100_randcue_paints_boxes_of_all_hundred_classes",)),
    Mutant("M117", "Dominoes validation images painted with cue halves from the test pool",
           "tasks/data.py", "base.x_val, base.y_val, base.cue_train",
           "base.x_val, base.y_val, base.cue_test",
           ("tests/tasks/test_data.py::test_dominoes_validation_images_are_painted_from_the_training_pool",)),
    Mutant("M118", "`data.cue_seed` ignored (the training cue follows `seed`)",
           "tasks/data.py", "cue_seed = settings.seed if settings.cue_seed is None else settings.cue_seed",
           "cue_seed = settings.seed",
           ("tests/tasks/test_data.py::test_cue_seed_decides_which_samples_carry_the_cue_and_how_it_is_painted_and_nothing_else",)),
    Mutant("M119", "built-in digits scaled to [-1, 0] instead of [-1, 1]",
           "tasks/data.py", "x = canvas * 2 - 1 + _DIGITS_NOISE",
           "x = canvas - 1 + _DIGITS_NOISE",
           ("tests/tasks/test_data.py::test_digits_are_the_upscaled_glyphs_in_minus_one_to_one_jittered_over_offsets_two_to_six",)),
    Mutant("M120", "built-in digits: labels left in place while the images are shuffled",
           "tasks/data.py", "    x, y = x[order], y[order]",
           "    x, y = x[order], y",
           ("tests/tasks/test_data.py::test_each_digit_image_carries_the_label_of_its_glyph",)),
    Mutant("M121", "the clean subset taken from the end of its draw (a smaller subset is not a prefix of a larger one)",
           "tasks/data.py", "generator=generator(seed, \"clean_subset\"))[:size]",
           "generator=generator(seed, \"clean_subset\"))[n_train - size:]",
           ("tests/tasks/test_data.py::test_a_smaller_clean_subset_is_the_first_draws_of_a_larger_one",)),
    Mutant("M122", "ResNet-18's shortcut added after the block's ReLU",
           "tasks/models.py", "return torch.relu(out + self.shortcut(x))",
           "return torch.relu(out) + self.shortcut(x)",
           ("tests/tasks/test_models.py::test_resnet18_matches_the_cifar_basic_block_recipe_written_out",)),
    Mutant("M123", "small_cnn's stride-2 block moved from the second to the third",
           "tasks/models.py", "[(w, 1), (2 * w, 2), (2 * w, 1), (4 * w, 2)]",
           "[(w, 1), (2 * w, 1), (2 * w, 2), (4 * w, 2)]",
           ("tests/tasks/test_models.py::test_small_cnn_is_four_convbn_relu_blocks_of_widths_w_2w_2w_4w_strides_1_2_1_2_then_average_pool",)),
    Mutant("M124", "evaluation forgets a non-finite batch that is not the last",
           "tasks/evaluate.py", "finite &= torch.isfinite(logits).all()",
           "finite = torch.isfinite(logits).all()",
           ("tests/tasks/test_evaluate.py::test_a_non_finite_image_in_any_batch_makes_the_whole_evaluation_nan",)),
    Mutant("M125", "joined evaluation: a non-finite image makes every set of its batch NaN",
           "tasks/evaluate.py", "finite.append(torch.isfinite(logits).all(1))",
           "finite.append(torch.isfinite(logits).all().expand(len(logits)))",
           ("tests/tasks/test_evaluate.py::test_a_non_finite_image_makes_only_its_own_set_nan_even_in_a_batch_it_shares",)),
    Mutant("M126", "training ignores `momentum` (0.9 always)",
           "tasks/train.py", "lr=settings.lr, momentum=settings.momentum,",
           "lr=settings.lr, momentum=0.9,",
           ("tests/tasks/test_science_train.py::test_fit_takes_sgd_steps_with_momentum_weight_decay_each_groups_own_lr_and_the_epochs_factor",)),
    Mutant("M127", "a parameter group's own learning rate replaced by the settings' lr",
           "tasks/train.py", "group[\"lr\"] = base * factor",
           "group[\"lr\"] = settings.lr * factor",
           ("tests/tasks/test_science_train.py::test_fit_takes_sgd_steps_with_momentum_weight_decay_each_groups_own_lr_and_the_epochs_factor",)),
    Mutant("M128", "the global RNG (dropout) seeded without the epoch: the same masks every epoch",
           "tasks/train.py", "derive_seed(seed, epoch, rank, _GLOBAL_RNG_STREAM)",
           "derive_seed(seed, rank, _GLOBAL_RNG_STREAM)",
           ("tests/tasks/test_science_train.py::test_the_global_rng_of_each_epoch_is_seeded_by_seed_and_epoch_and_restored_afterwards",)),
    Mutant("M129", "the cross-entropy objective shuffles every epoch as epoch 0",
           "tasks/train.py", "seed=self.order_seed(epoch), epoch=epoch,",
           "seed=self.order_seed(epoch), epoch=0,",
           ("tests/tasks/test_train.py::test_the_cross_entropy_objective_shuffles_each_epoch_by_seed_and_epoch_and_drops_the_last_partial_batch",)),
    Mutant("M130", "a downloaded archive on disk trusted without its md5",
           "tasks/datasets.py", "if dest.is_file() and md5_file(dest) == resource.md5:",
           "if dest.is_file():",
           ("tests/tasks/test_datasets.py::test_download_replaces_an_archive_on_disk_whose_md5_is_wrong",)),
    Mutant("M131", "BN sample: an endpoint's share truncated instead of rounded half up",
           "tasks/paths.py", "k = int(math.floor(share_a * size + 0.5))",
           "k = int(share_a * size)",
           ("tests/tasks/test_paths.py::test_bn_data_endpoint_shares_are_rounded_half_up",)),
    Mutant("M132", "a NaN accuracy along the path still gives finite barriers",
           "tasks/paths.py", "for v in loss + acc)",
           "for v in loss)",
           ("tests/tasks/test_paths.py::test_a_non_finite_accuracy_or_an_infinite_loss_gives_nan_barriers_too",)),
    Mutant("M133", "midpoint training draws one alpha per epoch instead of one per step",
           "tasks/paths.py", "alpha = draw_alpha(self.seed, epoch, step)",
           "alpha = draw_alpha(self.seed, epoch, 0)",
           ("tests/tasks/test_science_paths.py::test_the_control_points_objective_draws_a_fresh_alpha_at_every_step_of_an_epoch",)),
    Mutant("M134", "folded BN adds a convolution's bias without BN's scale",
           "tasks/paths.py", "shift = shift + bias.to(scale.dtype) * scale",
           "shift = shift + bias.to(scale.dtype)",
           ("tests/tasks/test_paths.py::test_folded_bn_and_the_reset_pass_keep_a_convolutions_bias",)),
    Mutant("M135", "CBFT's cue set gone through in the same order each time it runs out",
           "tasks/finetune.py", "derive_seed(self.seed, \"cbft-cue\", cycle)",
           "derive_seed(self.seed, \"cbft-cue\")",
           ("tests/tasks/test_finetune.py::test_cue_batches_are_reshuffled_each_time_the_cue_set_is_exhausted",)),
    Mutant("M136", "a cued image's twin gets another image's cue",
           "tasks/finetune.py", "need = (y_sub == k) & ~cued[index]",
           "need = y_sub == k",
           ("tests/tasks/test_finetune.py::test_a_cued_image_is_its_own_twin_and_every_donor_of_a_class_is_drawn",)),
    Mutant("M137", "naive fine-tuning ignores `finetune.momentum`",
           "tasks/settings/finetune.py", "lr=self.lr, momentum=self.momentum,",
           "lr=self.lr, momentum=0.9,",
           ("tests/tasks/test_science_finetune.py::test_naive_and_llrt_follow_their_own_momentum_and_naive_its_schedule",)),
    Mutant("M138", "`align` drops its seed (weight matching's group order fixed)",
           "tasks/align.py", "ALIGNMENTS[method](model_a, model_b, x, seed)",
           "ALIGNMENTS[method](model_a, model_b, x, 0)",
           ("tests/tasks/test_align.py::test_weight_matching_follows_the_seed_given_to_align",)),
    Mutant("M139", "the tracer ignores state entries it has no layout for (left unpermuted)",
           "tasks/permutation.py", "unknown = sorted(set(state) - set(layout))",
           "unknown = []",
           ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M140", "a checkpoint of another format version read as this one",
           "tasks/checkpoint.py", "if record.get(\"format\") != FORMAT_VERSION:",
           "if False:",
           ("tests/tasks/test_checkpoint.py::test_a_record_of_another_format_or_without_its_fields_or_tensors_is_refused",)),
    Mutant("M141", "a group with a ✗ and a ≈ check reported ≈, not ✗",
           "orchestrator/report/verdicts.py", "for o in (NO, OVERLAP, YES) if o in outcomes",
           "for o in (OVERLAP, NO, YES) if o in outcomes",
           ("tests/orchestrator/report/test_verdicts.py::test_a_groups_outcome_is_its_worst_decided_check",)),
    Mutant("M142", "the chance floor from the median over pairs, not their mean",
           "orchestrator/report/verdicts.py", "means = per_pair.groupby(level=[0, 1, 2]).mean()",
           "means = per_pair.groupby(level=[0, 1, 2]).median()",
           ("tests/orchestrator/report/test_verdicts.py::test_the_chance_floor_is_the_mean_over_pairs_of_each_pairs_extremes_not_their_median",)),
    Mutant("M143", "a seed's barrier is the largest of its pairs, not their mean",
           "orchestrator/report/verdicts.py", "index=rows[\"seed\"].to_numpy()).groupby(level=0).mean()",
           "index=rows[\"seed\"].to_numpy()).groupby(level=0).max()",
           ("tests/orchestrator/report/test_verdicts.py::test_a_seeds_barrier_is_the_mean_of_its_pairs_and_the_noise_floor_is_the_first_self_pair",)),
    Mutant("M144", "seeds needed for two independent groups without the sqrt(2) of their difference",
           "orchestrator/report/comparisons.py", "return Diff(False, min(na, nb), mean, se, float(df), level, math.sqrt(2) * pooled)",
           "return Diff(False, min(na, nb), mean, se, float(df), level, pooled)",
           ("tests/orchestrator/report/test_comparisons.py::test_seeds_needed_for_two_groups_is_the_two_sample_power_formula",)),
    Mutant("M145", "equivalence decided 'no' on the mean while the interval straddles the margin",
           "orchestrator/report/comparisons.py", "if diff.low > margin or diff.high < -margin:",
           "if diff.mean > margin or diff.mean < -margin:",
           ("tests/orchestrator/report/test_comparisons.py::test_equivalence_is_not_decided_the_other_way_while_the_interval_straddles_the_margin",)),
    Mutant("M146", "the permutation test's detectable shift one-sided",
           "orchestrator/report/comparisons.py", "return (float(scipy_stats.norm.ppf(1.0 - half)) + float(scipy_stats.norm.ppf(power))) * null_sd",
           "return (float(scipy_stats.norm.ppf(1.0 - 2 * half)) + float(scipy_stats.norm.ppf(power))) * null_sd",
           ("tests/orchestrator/report/test_comparisons.py::test_the_permutation_detectable_shift_is_the_two_sided_normal_formula",)),
    Mutant("M147", "a side with two values for one seed paired anyway",
           "orchestrator/report/comparisons.py", "if len(common) >= 2 and a.index.is_unique and b.index.is_unique:",
           "if len(common) >= 2 and (a.index.is_unique or b.index.is_unique):",
           ("tests/orchestrator/report/test_comparisons.py::test_a_side_with_two_values_for_one_seed_is_not_paired",)),
    Mutant("M148", "claim (a)'s random-cue check reads the randimg set",
           "orchestrator/report/claims.py", "j.above(\"a random cue costs the cue model more accuracy than the no-cue model\", rc.get(RANDCUE, EMPTY),",
           "j.above(\"a random cue costs the cue model more accuracy than the no-cue model\", rc.get(RANDIMG, EMPTY),",
           ("tests/orchestrator/report/test_claims.py::test_a_random_cue_that_costs_the_cue_model_nothing_makes_claim_a_fail",)),
    Mutant("M149", "the chance-floor guard skipped for an unseparated (≈) comparison",
           "orchestrator/report/claims.py", "if decision.outcome in (YES, NO, OVERLAP):\n            decision = self._guard",
           "if decision.outcome in (YES, NO):\n            decision = self._guard",
           ("tests/orchestrator/report/test_claims.py::test_a_separable_difference_whose_lower_side_sits_at_the_floor_is_not_testable_not_unseparated",)),
    Mutant("M150", "claim (d) drops the no-cue spawn control",
           "orchestrator/report/claims.py", "+ s.designs(vocab.NOCUE_NOCUE, vocab.SPAWN)",
           "",
           ("tests/orchestrator/report/test_claims.py::test_d_compares_the_same_init_pairs_with_every_same_data_control_from_one_initialisation",)),
    Mutant("M151", "claim (e) drops the loss tolerance of the chance floor",
           "orchestrator/report/claims.py", "if m.chance and cmp.at_floor(lo_acc, hi_loss, m.chance, r.floor_acc, r.floor_loss):",
           "if m.chance and cmp.at_floor(lo_acc, hi_loss, m.chance, r.floor_acc, 0.0):",
           ("tests/orchestrator/report/test_mechanism_map_rules.py::test_claim_e_is_not_testable_where_the_within_group_paths_peak_near_chance_loss",)),
    Mutant("M152", "the permutation test's lower-tail p-value leaves out ties with the observed value",
           "orchestrator/report/mechanism_map.py", "p_up, p_lo = float(np.mean(null >= observed - tol)), float(np.mean(null <= observed + tol))",
           "p_up, p_lo = float(np.mean(null >= observed - tol)), float(np.mean(null < observed - tol))",
           ("tests/orchestrator/report/test_mechanism_map_rules.py::test_the_lower_tail_p_value_counts_the_observed_relabeling",)),
    Mutant("M153", "mechanism components link barriers below the threshold only, not at it",
           "orchestrator/report/mechanism_map.py", "_, raw = connected_components((matrix <= threshold) & ~np.eye(k, dtype=bool), directed=False)",
           "_, raw = connected_components((matrix < threshold) & ~np.eye(k, dtype=bool), directed=False)",
           ("tests/orchestrator/report/test_mechanism_map_rules.py::test_components_link_barriers_at_the_threshold",)),
    Mutant("M154", "a retried task judged by its first (stale) status",
           "orchestrator/report/stats.py", "labels = tasks.drop_duplicates(\"task_id\", keep=\"last\").set_index(\"task_id\")",
           "labels = tasks.drop_duplicates(\"task_id\", keep=\"first\").set_index(\"task_id\")",
           ("tests/orchestrator/report/test_stats.py::test_a_retried_task_counts_by_its_latest_status",)),
    Mutant("M155", "endpoint drift with its sign flipped (trained minus path)",
           "orchestrator/report/stats.py", "loss_d=at[\"loss\"].to_numpy() - ref[\"loss\"].to_numpy()",
           "loss_d=ref[\"loss\"].to_numpy() - at[\"loss\"].to_numpy()",
           ("tests/orchestrator/report/test_stats.py::test_endpoint_drift_is_path_minus_trained_at_each_end",)),
    Mutant("M156", "a path's BatchNorm data names endpoint A's training data for both ends",
           "orchestrator/graph/dag.py", "eval_config[\"bn_data\"] = [a.config[\"data\"], b.config[\"data\"]]",
           "eval_config[\"bn_data\"] = [a.config[\"data\"], a.config[\"data\"]]",
           ("tests/orchestrator/graph/test_graph.py::test_bn_data_from_the_endpoints_names_each_endpoints_own_training_data_in_order",)),
    Mutant("M157", "a failed task's descendants stop at its children (grandchildren not skipped)",
           "orchestrator/graph/dag.py", "stack.append(child)",
           "pass",
           ("tests/orchestrator/graph/test_graph.py::test_descendants_are_every_task_that_depends_on_it_through_any_chain_of_parents",)),
    Mutant("M158", "a cross-seed population midpoint trained with endpoint A's seed, not the smaller one",
           "orchestrator/graph/dag.py", "\"train\": identity_dict(v.midpoint), \"seed\": pair.seed},",
           "\"train\": identity_dict(v.midpoint), \"seed\": a.labels[\"seed\"]},",
           ("tests/orchestrator/spec/test_population.py::test_a_population_pair_across_seeds_trains_and_evaluates_with_the_smaller_seed",)),
    Mutant("M159", "a rerun's rewritten fragment vouched for by its old part",
           "orchestrator/results/outputs.py", "if compacted(path) == digest:",
           "if compacted(path) is not None:",
           ("tests/orchestrator/results/test_outputs.py::test_a_fragment_rewritten_after_compaction_is_checked_not_vouched_for_by_its_part",)),
    Mutant("M160", "a fragment holding another task's rows besides its own accepted",
           "orchestrator/results/tables.py", "if ids != {task_id}:",
           "if task_id not in ids:",
           ("tests/orchestrator/results/test_tables.py::test_a_fragment_holding_another_tasks_rows_besides_its_own_is_refused",)),
    Mutant("M161", "a compacted task's rows sliced from the part's start, not its row group's",
           "orchestrator/results/tables.py", ".slice(entry.offset - first, entry.rows)",
           ".slice(entry.offset, entry.rows)",
           ("tests/orchestrator/results/test_tables.py::test_a_compacted_tasks_rows_are_read_from_a_part_of_many_row_groups",)),
    Mutant("M162", "salvage takes back rows that no longer re-serialise to their fragment",
           "orchestrator/results/tables.py", "rows.num_rows == entry.rows and entry.matches(fragment_bytes(table, rows))",
           "rows.num_rows == entry.rows",
           ("tests/orchestrator/results/test_tables.py::test_salvage_takes_back_only_the_rows_that_reserialise_to_their_fragment",)),
    Mutant("M163", "a manifest entry pointing past the end of its part accepted",
           "orchestrator/results/manifest.py", "or offset + rows > parts[part].rows or",
           "or",
           ("tests/orchestrator/results/test_compact.py::test_a_manifest_entry_pointing_outside_its_part_is_refused",)),
    Mutant("M164", "open_sweep's tables: planned_only inverted",
           "orchestrator/api.py", "planned = self._planned_ids if planned_only else None",
           "planned = self._planned_ids if not planned_only else None",
           ("tests/orchestrator/test_api.py::test_tables_hold_the_plans_rows_unless_asked_for_every_row",)),
    Mutant("M165", "status's ETA ignores each kind's own mean duration",
           "orchestrator/status.py", "work = sum(mean.get(kind, overall) for kind in remaining)",
           "work = sum(overall for kind in remaining)",
           ("tests/orchestrator/test_status.py::test_the_sweep_eta_takes_each_kinds_mean_duration_over_the_tasks_not_started",)),
    Mutant("M166", "status exits 0 for a sweep whose only problem is skipped tasks",
           "orchestrator/status.py", "return 1 if total[vocab.FAILED] + total[vocab.SKIPPED] else 0",
           "return 1 if total[vocab.FAILED] else 0",
           ("tests/orchestrator/test_status.py::test_a_retried_task_counts_by_its_latest_row_and_skipped_tasks_make_exit_1",)),
    Mutant("M167", "the report's compute time counts failed tasks too",
           "orchestrator/report/build.py", "done = tasks[tasks[\"status\"] == vocab.FINISHED]",
           "done = tasks",
           ("tests/orchestrator/report/test_report.py::test_task_provenance_sums_finished_durations_and_spans_first_start_to_last_finish",)),
    Mutant("M168", "the report's barrier table shows another definition than the chord by default",
           "orchestrator/report/build.py", "metric: str = \"loss\", definition: str = \"chord\",",
           "metric: str = \"loss\", definition: str = \"mean_endpoints\",",
           ("tests/orchestrator/report/test_report.py::test_barrier_tables_show_each_cells_chord_mean_and_interval",)),
    Mutant("M169", "a partial sweep's page shown as complete",
           "orchestrator/report/html.py", "elif finished >= planned and not bad:",
           "elif finished >= planned or not bad:",
           ("tests/orchestrator/report/test_report.py::test_the_page_says_partial_or_bad_from_the_counts",)),
    Mutant("M170", "the mechanism table's cell shows its lower bound, not its mean",
           "orchestrator/report/html.py", "cells.append(f'<td title=\"{tip}\">{100 * mean:.1f}</td>')",
           "cells.append(f'<td title=\"{tip}\">{100 * low:.1f}</td>')",
           ("tests/orchestrator/report/test_report.py::test_the_mechanism_table_shows_agreement_with_each_endpoint_in_percent",)),
    Mutant("M171", "provenance records torch's version for every package",
           "orchestrator/provenance.py", "metadata.version(package)",
           "metadata.version(\"torch\")",
           ("tests/orchestrator/test_provenance.py::test_software_versions_are_the_installed_distributions",)),
    Mutant("M172", "weight matching takes an improvement only above 1e-3 of the largest score (a near-tie's better permutation left)",
           "tasks/align.py", "if gain > 1e-12 * max(",
           "if gain > 1e-3 * max(",
           ("tests/tasks/test_align.py::test_weight_matching_takes_a_small_improvement_not_only_large_ones",)),
    Mutant("M173", "alignment's distance 'before' measured after the permutation",
           "orchestrator/run/work.py", "before = _distance(model_a.state_dict(), state_b)",
           "before = _distance(model_a.state_dict(), permuted)",
           ("tests/orchestrator/run/test_work.py::test_alignment_reports_weight_distances_before_and_after_and_whether_it_is_the_identity",)),
    Mutant("M174", "a path's BatchNorm images of its two endpoints swapped",
           "orchestrator/run/work.py", "bn_a, bn_b = (_data(config, env).train.x for config in cfg[\"bn_data\"])",
           "bn_b, bn_a = (_data(config, env).train.x for config in cfg[\"bn_data\"])",
           ("tests/orchestrator/run/test_work.py::test_a_path_is_evaluated_with_its_settings_seed_and_each_endpoints_own_bn_images",)),
    Mutant("M175", "an identity alignment's path reuses the rows of the wrong parent",
           "orchestrator/run/work.py", "return _same_as_linear(task, env, cfg[\"linear\"])",
           "return _same_as_linear(task, env, cfg[\"via\"])",
           ("tests/orchestrator/run/test_work.py::test_the_aligned_path_of_an_identity_alignment_is_the_linear_paths_rows_under_its_own_id",)),
    Mutant("M176", "a path curve's MLflow step truncated instead of rounded (alpha 2/3 at 666)",
           "orchestrator/run/work.py", "return round(ALPHA_STEPS * float(alpha))",
           "return int(ALPHA_STEPS * float(alpha))",
           ("tests/orchestrator/run/test_work.py::test_alpha_step_rounds_to_the_nearest_integer",)),
    Mutant("M177", "every `tasks` row of a recorded batch is its first task's row",
           "orchestrator/run/recording.py", "arrow = block.slice(i, 1) if block is not None",
           "arrow = block.slice(0, 1) if block is not None",
           ("tests/orchestrator/run/test_recording.py::test_each_ended_task_gets_its_own_tasks_row_with_its_status_times_and_run_id",)),
    Mutant("M178", "a cached task's `tasks` row not marked cached",
           "orchestrator/run/recording.py", "cached=e.status == vocab.CACHED,",
           "cached=False,",
           ("tests/orchestrator/run/test_recording.py::test_each_ended_task_gets_its_own_tasks_row_with_its_status_times_and_run_id",)),
    Mutant("M179", "Holm's step-down bar replaced by Bonferroni's (every p-value against α/2k)",
           "orchestrator/report/verdicts.py", "family[rejected].p_other <= half / (k - rejected)",
           "family[rejected].p_other <= half / k",
           ("tests/orchestrator/report/test_verdicts.py",)),
    Mutant("M180", "a claim's ✗ judged at each comparison's own level (no family-wise correction)",
           "orchestrator/report/verdicts.py", "if c.outcome == NO and id(c) in demoted else c",
           "if False else c", ("tests/orchestrator/report/test_verdicts.py", "tests/orchestrator/report/test_claims.py")),
    Mutant("M181", "the p-value of the other way of a non-inferiority test ignores the margin",
           "orchestrator/report/comparisons.py", "p = _below(diff.mean + margin, diff)", "p = _below(diff.mean, diff)",
           ("tests/orchestrator/report/test_comparisons.py",)),
    Mutant("M182", "a guard that makes a barrier comparison not testable drops it from the claim's family",
           "orchestrator/report/comparisons.py", "return replace(self, outcome=UNTESTABLE, reason=reason)",
           "return Decision(UNTESTABLE, reason)", ("tests/orchestrator/report/test_claims.py",)),
    Mutant("M183", "Holm's step-down goes on past the first p-value that misses its bar",
           "orchestrator/report/verdicts.py", "for c in family[rejected:]:",
           "for c in [c for j, c in enumerate(family) if j >= rejected and c.p_other > half / (k - j)]:", ("tests/orchestrator/report/test_verdicts.py",)),
    Mutant("M184", "a file replaced while it is read on an object store is read once, torn or not",
           "orchestrator/storage/layout.py", "            if not replaced:\n                return data",
           "            if True:\n                return data",
           ("tests/orchestrator/storage/test_s3.py::test_a_file_replaced_while_it_is_read_is_read_whole_or_not_at_all",)),
    Mutant("M185", "a replaced file's read kept whatever the object's size after it",
           "orchestrator/storage/layout.py", "if after is not None and after[0] == len(data):",
           "if after is not None:",
           ("tests/orchestrator/storage/test_s3.py::test_a_file_replaced_while_it_is_read_is_read_whole_or_not_at_all",)),
    Mutant("M186", "claim (a)'s 'a model trained without it does not' judged on the cue model",
           "orchestrator/report/claims.py",
           'j.near_zero("the no-cue model does not rely on the cue: randimg at chance", rn.get(RANDIMG, EMPTY),',
           'j.near_zero("the no-cue model does not rely on the cue: randimg at chance", rc.get(RANDIMG, EMPTY),',
           ("tests/orchestrator/report/test_claims.py",)),
    Mutant("M187", "built-in digits test images handed out without a copy (writing into an eval set corrupts the cache)", "tasks/data.py", "x_te.to(device, copy=True)", "x_te.to(device)", ("tests/tasks/test_data.py::test_writing_into_a_loaded_evaluation_set_never_leaks_into_a_later_load",)),
    Mutant("M188", "dominoes' FashionMNIST halves resized by nearest neighbour instead of bilinear", "tasks/data.py", 'chunk = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False)', 'chunk = F.interpolate(chunk, size=size, mode="nearest")', ("tests/tasks/test_data.py::test_a_resized_image_is_the_bilinear_half_pixel_resample_of_its_normalised_pixels",)),
    Mutant("M189", "validation share of non-published files floored instead of rounded", "tasks/data.py", "return round(n_published * info.val_size / standard)", "return n_published * info.val_size // standard", ("tests/tasks/test_data.py::test_other_file_sizes_hold_out_the_published_fraction_rounded_to_the_nearest_image",)),
    Mutant("M190", "grid box rows taken from the width and columns from the height", "tasks/data.py", "rows, cols = lines(height), lines(width)", "rows, cols = lines(width), lines(height)", ("tests/tasks/test_data.py::test_grid_boxes_of_a_non_square_image_follow_its_height_for_rows_and_its_width_for_columns",)),
    Mutant("M191", "box hue -> RGB with green and blue swapped", "tasks/data.py", "torch.tensor([5.0, 3.0, 1.0])", "torch.tensor([5.0, 1.0, 3.0])", ("tests/tasks/test_data.py::test_rgb_box_colours_for_thirty_classes_are_red_green_and_blue",)),
    Mutant("M192", "batches keep the last partial batch by default", "tasks/data.py", "drop_last: bool = True", "drop_last: bool = False", ("tests/tasks/test_data.py::test_batches_drop_the_last_partial_batch_by_default",)),
    Mutant("M193", "dominoes never draw the last pool image of a class", "tasks/data.py", "offset = (u * self.counts[cue_labels]).long()", "offset = (u * (self.counts[cue_labels] - 1)).long()", ("tests/tasks/test_data.py::test_a_domino_pool_draws_each_image_of_the_requested_class_uniformly",)),
    Mutant("M194", "IDX int16 read as unsigned", "tasks/datasets.py", '0x0B: ">i2"', '0x0B: ">u2"', ("tests/tasks/test_datasets.py::test_read_idx_reads_signed_and_float_types_stored_big_endian[int16]",)),
    Mutant("M195", "path BN re-estimated in fp32 while the path is evaluated in bf16", "tasks/paths.py", "reset_bn(scratch, sample, settings.eval_batch_size, precision, traced=traced)", "reset_bn(scratch, sample, settings.eval_batch_size, \"fp32\", traced=traced)", ("tests/tasks/test_paths.py::test_every_alpha_re_estimates_batchnorm_in_the_paths_precision[bf16]",)),
    Mutant("M196", "BN sample size not capped by the training images (endpoint shares wrong)", "tasks/paths.py", "size = min(settings.bn_reset_samples, len(bn_data))", "size = settings.bn_reset_samples", ("tests/tasks/test_paths.py::test_a_bn_sample_larger_than_the_training_set_splits_all_of_it_between_the_endpoints[resample]",)),
    Mutant("M197", "fresh midpoint drawn from the untagged seed (= an endpoint's initialisation)", "tasks/paths.py", "torch.manual_seed(derive_seed(seed, _TAG_INIT))", "torch.manual_seed(seed)", ("tests/tasks/test_science_paths.py::test_a_fresh_midpoint_is_not_the_initialisation_of_a_model_built_from_the_same_seed",)),
    Mutant("M198", "naive fine-tuning trains on one full batch instead of batch_size", "tasks/finetune.py", "cross_entropy_objective(clean, settings.batch_size, derive_seed", "cross_entropy_objective(clean, len(clean), derive_seed", ("tests/tasks/test_finetune.py::test_naive_llrt_and_lpft_train_on_batches_of_batch_size_that_cover_the_clean_subset[naive]",)),
    Mutant("M199", "llrt head trained on one full batch instead of batch_size", "tasks/finetune.py", "HeadObjective(features, settings.batch_size,", "HeadObjective(features, len(features),", ("tests/tasks/test_finetune.py::test_naive_llrt_and_lpft_train_on_batches_of_batch_size_that_cover_the_clean_subset[llrt]",)),
    Mutant("M200", "backbone features of later batches sliced wrongly", "tasks/finetune.py", "split.x[start:start + batch_size]", "split.x[start:batch_size]", ("tests/tasks/test_finetune.py::test_backbone_features_are_computed_in_eval_mode_whatever_the_batching_and_leave_the_mode_alone",)),
    Mutant("M201", "twins invariance averages over classes without a cued donor", "tasks/finetune.py", "invariance_loss(f_clean, f_twin, y, self.classes)", "class_mean_invariance(f_clean, y, f_twin, y, logits.shape[1])", ("tests/tasks/test_finetune.py::test_twins_invariance_leaves_out_a_class_without_a_cued_donor",)),
    Mutant("M202", "fresh llrt head's bias drawn from U(0, bound)", "tasks/finetune.py", "head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))", "head.bias.copy_(torch.empty(head.bias.shape).uniform_(0.0, bound, generator=gen))", ("tests/tasks/test_science_finetune.py::test_reset_head_draws_the_bias_from_the_same_symmetric_interval",)),
    Mutant("M203", "constant channel: variance not clamped at 0, NaN correlation", "tasks/align.py", "std_a = (saa - sa**2).clamp_min(0).sqrt()", "std_a = (saa - sa**2).sqrt()", ("tests/tasks/test_align.py::test_a_constant_channel_correlates_zero_with_every_channel_not_nan",)),
    Mutant("M204", "weight matching gain ignores the current matching (never converges, runs max_iter sweeps)", "tasks/align.py", "gain = score[rows, new].sum() - score[rows, perms[group]].sum()", "gain = score[rows, new].sum()", ("tests/tasks/test_align.py::test_weight_matching_stops_after_the_first_sweep_that_improves_nothing",)),
    Mutant("M205", "tracer refuses a subtraction of two branches", "tasks/permutation.py", 'if op not in ("add", "sub"):', 'if op not in ("add",):', ("tests/tasks/test_permutation_trace.py::test_the_tracer_follows_the_channels_through_every_supported_operation",)),
    Mutant("M206", "pooled map + unpooled map marked 1x1: flatten mixes channels", "tasks/permutation.py", "a.ndim or b.ndim, a.flat and b.flat)", "a.ndim or b.ndim, a.flat or b.flat)", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M207", "mean over all spatial axes with keepdim not known to be 1x1", "tasks/permutation.py", "every = dims == set(range(2, x.ndim))", "every = dims == set(range(1, x.ndim))", ("tests/tasks/test_permutation_trace.py::test_the_tracer_follows_the_channels_through_every_supported_operation",)),
    Mutant("M208", "view with a constant batch size accepted (mixes samples and channels)", "tasks/permutation.py", "if not (x.spatial_free and len(shape) == 2 and batch and", "if not (x.spatial_free and len(shape) == 2 and", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M209", "a divergence reported with its epoch and step swapped", "tasks/train.py", "raise DivergenceError(epoch, step, checked)", "raise DivergenceError(step, epoch, checked)", ("tests/tasks/test_science_train.py::test_a_non_finite_loss_stops_training_naming_its_epoch_and_step",)),
    Mutant("M210", "an infinite loss is not a divergence (only NaN stops training)", "tasks/train.py", "if not math.isfinite(checked):", "if math.isnan(checked):", ("tests/tasks/test_science_train.py::test_a_non_finite_loss_stops_training_naming_its_epoch_and_step",)),
    Mutant("M211", "gradients zeroed instead of cleared: a parameter a step does not reach still decays and rides momentum", "tasks/train.py", "optimizer.zero_grad(set_to_none=True)", "optimizer.zero_grad(set_to_none=False)", ("tests/tasks/test_science_train.py::test_a_parameter_without_a_gradient_in_a_step_is_left_alone_by_that_step",)),
    Mutant("M212", "DDP: a parameter with a gradient on only some ranks gets no zeros (ranks send different buffers)", "tasks/train.py", "if count > 0 and p.grad is None:", "if count > 1 and p.grad is None:", ("tests/tasks/test_science_train.py::test_the_step_reduction_averages_the_loss_and_gives_zeros_where_only_another_rank_has_a_gradient",)),
    Mutant("M213", "DDP: divergence checked on this rank's loss only (another rank's NaN leaves this one waiting)", "tasks/train.py", "if not math.isfinite(checked):", "if not math.isfinite(value):", ("tests/tasks/test_science_train.py::test_a_loss_that_diverges_on_another_rank_stops_this_rank_at_the_same_step",)),
    Mutant("M214", "bf16 evaluation autocasts to float16", "tasks/evaluate.py", "dtype=torch.bfloat16)", "dtype=torch.float16)", ("tests/tasks/test_evaluate.py::test_bf16_evaluation_runs_the_layers_in_bfloat16_and_fp32_in_float32",)),
    Mutant("M215", "checkpoint writes meta.json before the tensors (an interrupted save looks complete)", "tasks/checkpoint.py", "for name in (TENSORS_FILE, META_FILE):\n        temp", "for name in (META_FILE, TENSORS_FILE):\n        temp", ("tests/tasks/test_checkpoint.py::test_a_save_interrupted_after_the_tensors_leaves_no_meta_json",)),
    Mutant("M216", "an installed plugin is versioned by a source hash (its distribution looked up by the last module part)", "tasks/plugins.py", '.split(".")[0]', '.split(".")[-1]', ("tests/tasks/test_plugins.py::test_an_installed_plugin_is_versioned_by_its_distribution",)),
    Mutant("M217", "a trained model's evaluation in 'auto' precision by default (bf16 on CPUs with native bf16)", "tasks/evaluate.py", 'device: torch.device | str = "cpu", precision: str = "fp32", predictions', 'device: torch.device | str = "cpu", precision: str = "auto", predictions', ("tests/tasks/test_evaluate.py::test_evaluation_is_fp32_by_default_even_where_the_machine_computes_bf16_natively",)),
    Mutant("M218", "a 1x1 map pooled back up to 2x2 still taken for 1x1 (the tracer's flatten mixes channels)", "tasks/permutation.py", "return _Value(x.group, x.ndim, all(s == 1 or s is None and x.flat for s in sizes))", "return _Value(x.group, x.ndim, x.flat or all(s == 1 for s in sizes))", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M219", "a padded pool of a 1x1 map still taken for 1x1", "tasks/permutation.py", "return _Value(x.group, x.ndim, x.flat and all(p == 0 for p in pads))", "return _Value(x.group, x.ndim, x.flat)", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M220", "the clock-skew allowance dropped from a lease (a live lock taken over 60 s early)", "orchestrator/storage/lock.py", "return renewed + lease + MAX_CLOCK_SKEW_S - (time.time() if now is None else now)", "return renewed + lease - (time.time() if now is None else now)", ("tests/orchestrator/storage/test_lock.py::test_a_lease_lasts_its_seconds_plus_the_clock_skew_from_its_renewal",)),
    Mutant("M221", "a live holder of another user (EPERM) counted as dead and its lock taken over", "orchestrator/storage/lock.py", "    except (PermissionError, OverflowError):\n        return True", "    except (PermissionError, OverflowError):\n        return False", ("tests/orchestrator/storage/test_lock.py::test_a_pid_this_driver_may_not_signal_is_a_running_process",)),
    Mutant("M222", "a credential in the store's error printed in the StoreUnreachable message", "orchestrator/storage/retry.py", 'text = " ".join(redact(str(exc)).split())', 'text = " ".join(str(exc).split())', ("tests/orchestrator/storage/test_retry.py::test_the_final_error_names_the_storage_redacted_and_a_reason_of_at_most_240_characters",)),
    Mutant("M223", "the retry sleeps past its budget (the next wait not counted)", "orchestrator/storage/retry.py", "if now - started + wait > budget_s:", "if now - started > budget_s:", ("tests/orchestrator/storage/test_retry.py::test_an_unreachable_store_is_tried_again_after_half_a_second_then_doubling_waits_of_at_most_eight",)),
    Mutant("M224", "an outage that ended in StoreUnreachable never ends for the process (the next one is not warned of)", "orchestrator/storage/retry.py", "                _gave_up()\n", "                pass\n", ("tests/orchestrator/storage/test_retry.py::test_an_outage_that_ended_in_its_error_is_followed_by_a_warned_outage_timed_from_its_own_start",)),
    Mutant("M225", "a resumed task's ETA counts the epochs of earlier attempts as this attempt's", "orchestrator/run/progress.py", 'done = record.get("epoch", 0) - record.get("start_epoch", 0)', 'done = record.get("epoch", 0)', ("tests/orchestrator/run/test_progress.py::test_the_eta_of_a_resumed_attempt_uses_only_the_epochs_it_ran",)),
    Mutant("M226", "fractional resources floored without epsilon (0.3 CPU holds 2 tasks of 0.1)", "orchestrator/run/capacity.py", "math.floor(float(cluster.get(name, 0)) / amount + _EPS)", "math.floor(float(cluster.get(name, 0)) / amount)", ("tests/orchestrator/run/test_capacity.py::test_slots_count_fractional_resources_exactly",)),
    Mutant("M227", "file://localhost/abs names the relative path abs (results written under the cwd)", "orchestrator/uris.py", 'return rest[len("localhost"):]', 'return rest[len("localhost/"):]', ("tests/orchestrator/test_uris.py::test_a_storage_uri_names_its_local_absolute_path_or_none_when_remote",)),
    Mutant("M228", "a ?password= query parameter printed unredacted", "orchestrator/uris.py", "token|secret|passw|pwd|", "token|secret|pwd|", ("tests/orchestrator/test_uris.py::test_redact_hides_credentials_whatever_the_case_and_separator",)),
    Mutant("M229", "barrier comparisons judged underpowered against the reliance effect, not the barrier effect", "orchestrator/report/claims.py", "decision = cmp.superiority(diff, r.barrier_effect, r.power)", "decision = cmp.superiority(diff, r.reliance_effect, r.power)", ("tests/orchestrator/report/test_claims.py::test_a_barrier_comparison_is_judged_underpowered_against_the_barrier_effect_of_the_rules",)),
    Mutant("M230", "seeds needed for two groups on 2n - 1 degrees of freedom", "orchestrator/report/comparisons.py", "df = n - 1 if diff.paired else 2 * n - 2", "df = n - 1 if diff.paired else 2 * n - 1", ("tests/orchestrator/report/test_comparisons.py::test_seeds_needed_for_two_groups_counts_two_n_minus_two_degrees_of_freedom",)),
    Mutant("M231", "non-inferiority passed on the mean while the interval crosses -margin", "orchestrator/report/comparisons.py", "if diff.low > -margin:", "if diff.mean > -margin:", ("tests/orchestrator/report/test_comparisons.py::test_non_inferiority_needs_the_whole_interval_above_minus_the_margin",)),
    Mutant("M232", "mechanism map clustered by complete linkage", "orchestrator/report/mechanism_map.py", 'method="average"', 'method="complete"', ("tests/orchestrator/report/test_mechanism_map_rules.py::test_clusters_join_two_groups_at_their_average_barrier",)),
    Mutant("M233", "mechanism maps average loss and accuracy barriers of a pair", "orchestrator/report/mechanism_map.py", 'own = bars[bars["metric"] == rules.barrier_metric]', "own = bars", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_a_map_of_loss_barriers_ignores_the_accuracy_barriers_of_the_same_pairs",)),
    Mutant("M234", "(b) judged on the basin sets only", "orchestrator/report/claims.py", "    for eval_set in r.barrier_sets:\n        j.barrier_row(ft, eval_set, CLAIM)", "    for eval_set in r.basin_sets:\n        j.barrier_row(ft, eval_set, CLAIM)", ("tests/orchestrator/report/test_claims.py::test_b_judges_staying_connected_on_every_barrier_set",)),
    Mutant("M235", "a supporting check that cannot be separated leaves 'holds' unqualified", "orchestrator/report/verdicts.py", "c.outcome in (NO, OVERLAP)]", "c.outcome in (NO,)]", ("tests/orchestrator/report/test_verdicts.py::test_a_supporting_check_not_decided_as_claimed_qualifies_the_holds",)),
    Mutant("M236", "Table 1 drops evaluations of tasks the tasks table does not name", "orchestrator/report/stats.py", 'ev = ev[ev["status"].isna() | (ev["status"] == vocab.FINISHED)]', 'ev = ev[ev["status"] == vocab.FINISHED]', ("tests/orchestrator/report/test_stats.py::test_an_evaluation_of_a_task_missing_from_the_tasks_table_still_counts",)),
    Mutant("M237", "the map's unknown group stored through numpy (pandas 3: NaN, counted as a group by claim (e))", "orchestrator/report/mechanism_map.py", 'models["group"] = pd.Series(groups, index=models.index, dtype=object)', 'models["group"] = np.where(np.isnan(reliance), None, groups)', ("tests/orchestrator/report/test_mechanism_map_rules.py::test_a_model_whose_reliance_is_not_measured_is_in_no_group_of_the_map",)),
    Mutant("M238", "supporting checks read at α/2 each, not as a family (Holm)", "orchestrator/report/verdicts.py", '((True, "comparisons"), (False, "supporting checks"))', '((True, "comparisons"),)', ("tests/orchestrator/report/test_verdicts.py::test_supporting_checks_are_a_family_of_their_own",)),
    Mutant("M239", "a Ray address on localhost (`localhost:6379`) is never checked: Ray retries for minutes instead of exit 2", "orchestrator/run/preflight.py", 'if not address or address in ("auto", "local"):', 'if not address or address == "auto" or address.startswith("local"):', ("tests/orchestrator/run/test_preflight.py::test_an_address_on_localhost_is_checked_like_any_other",)),
    Mutant("M240", "the visibility check's problems are not raised (nodes that do not see storage pass)", "orchestrator/run/preflight.py", '        raise SweepError("\\n\\n".join(problems))', '        pass', ("tests/orchestrator/run/test_preflight.py::test_nodes_that_do_not_see_the_sweeps_paths_refuse_the_run",)),
    Mutant("M241", "a cluster without an autoscaler is asked for nodes and waited for 60 s", "orchestrator/run/preflight.py", 'if view.autoscaler is not None and ask is not None and not asked:', 'if ask is not None and not asked:', ("tests/orchestrator/run/test_preflight.py::test_a_cluster_without_an_autoscaler_is_not_asked_for_nodes_and_refused_at_once",)),
    Mutant("M242", "the gRPC check reads the flags byte as the frame type (a real Ray refused)", "orchestrator/run/preflight.py", 'if header[3] != 0x04:', 'if header[4] != 0x04:', ("tests/orchestrator/run/test_preflight.py::test_a_grpc_server_answering_the_http2_preface_with_settings_passes",)),
    Mutant("M243", "an existing bucket is reported missing", "orchestrator/run/preflight.py", 'missing = fs.get_file_info(bucket).type == pafs.FileType.NotFound', 'missing = fs.get_file_info(bucket).type != pafs.FileType.NotFound', ("tests/orchestrator/run/test_preflight.py::test_an_existing_bucket_is_listed_once_and_passes",)),
    Mutant("M244", "a KubeRay container's cpu limit wins over rayStartParams num-cpus", "orchestrator/run/node_types.py", 'cpus = params.get("num-cpus", limits.get("cpu"))', 'cpus = limits.get("cpu", params.get("num-cpus"))', ("tests/orchestrator/run/test_node_types.py::test_a_kuberay_groups_ray_start_params_win_over_its_containers_limits",)),
    Mutant("M245", "a fixed KubeRay cluster's groups add no nodes", "orchestrator/run/node_types.py", 'where) if autoscaling else replicas\n        fewest', 'where) if autoscaling else 0\n        fewest', ("tests/orchestrator/run/test_node_types.py::test_without_in_tree_autoscaling_a_group_has_exactly_its_replicas",)),
    Mutant("M246", "a node that left the cluster stops the check of the nodes after it", "orchestrator/run/visibility.py", '            continue   # the node left', '            break   # the node left', ("tests/orchestrator/run/test_visibility.py::test_a_node_that_left_during_the_check_does_not_hide_the_nodes_after_it",)),
    Mutant("M247", "a dataset file larger than the driver's passes the node check", "orchestrator/run/visibility.py", 'if have != size:', 'if have < size:', ("tests/orchestrator/run/test_visibility.py::test_a_dataset_file_larger_than_the_drivers_is_reported",)),
    Mutant("M248", "a repeated value in a tuple setting (claims.barrier_sets: [cue, cue]) judged twice instead of refused", "tasks/settings/__init__.py", '        return _repeated(value)\n', '        return None\n', ("tests/orchestrator/spec/test_spec_jsonschema.py::test_the_schema_and_the_validator_agree_at_the_edges",)),
    Mutant("M249", "a spec file larger than MAX_BYTES is cut to its first MAX_BYTES bytes and run", "orchestrator/spec/yaml_io.py", "data = f.read(MAX_BYTES + 1)", "data = f.read(MAX_BYTES)", ("tests/orchestrator/spec/test_yaml_io.py::test_a_file_may_have_max_bytes_bytes_and_a_larger_one_is_refused_not_cut",)),
    Mutant("M250", "a signed leading-zero integer (-07) is read instead of refused", "orchestrator/spec/yaml_io.py", 'digits = text.lstrip("+-")', "digits = text", ("tests/orchestrator/spec/test_yaml_io.py::test_an_integer_with_a_leading_zero_is_refused_whatever_its_sign",)),
    Mutant("M251", "YAML 1.2 octal 0o17 read as decimal 17", "orchestrator/spec/yaml_io.py", "return int(text[2:], 8)", "return int(text[2:])", ("tests/orchestrator/spec/test_yaml_io.py::test_plain_scalars_read_as_the_yaml_1_2_core_schema_says",)),
    Mutant("M252", "a whole-mapping override keeps the replaced inner override's label", "orchestrator/spec/layers.py", "for old in [p for p in origins if p[:len(path)] == path]:", "for old in [p for p in origins if p == path]:", ("tests/orchestrator/spec/test_spec_layers.py::test_an_override_of_a_whole_mapping_drops_what_an_earlier_override_set_inside_it",)),
    Mutant("M253", "a nested extends is resolved relative to the first spec, not the file naming it", "orchestrator/spec/layers.py", 'text, base_dir = read_text(path, "spec file"), path.parent', 'text = read_text(path, "spec file")', ("tests/orchestrator/spec/test_spec_layers.py::test_a_sweep_that_extends_another_names_it_relative_to_its_own_file",)),
    Mutant("M254", "a dataset of your own (import path) is required to have data.root", "orchestrator/spec/schema.py", 'getattr(DATASETS.get(dataset), "needs_root", False)', 'getattr(DATASETS.get(dataset), "needs_root", True)', ("tests/orchestrator/spec/test_spec_schema.py::test_a_dataset_of_your_own_needs_no_root",)),
    Mutant("M255", "storage 's3://' (no bucket) accepted", "orchestrator/spec/locations.py", 'elif not after_scheme(value).strip("/"):', "elif not after_scheme(value):", ("tests/orchestrator/spec/test_locations.py::test_storage_names_a_location_after_a_known_scheme",)),
    Mutant("M256", "explain_spec prints credentials of URI values (Python API)", "orchestrator/spec/explain.py", "lines = [(redact(text), redact(why)) for text, why in found]", "lines = [(text, redact(why)) for text, why in found]", ("tests/orchestrator/spec/test_spec_layers.py::test_the_explained_spec_never_shows_a_credential_even_without_the_cli",)),
    Mutant("M257", "warnings printed to stdout without their prefix", "orchestrator/messages.py", "if record.levelno >= logging.WARNING:", "if record.levelno > logging.WARNING:", ("tests/orchestrator/test_messages.py::test_each_level_goes_to_its_stream_with_its_prefix",)),
    Mutant("M258", "a kind's typical duration is the mean of its latest tasks, not the median", "orchestrator/run/schedule.py", "statistics.median(recent)", "statistics.mean(recent)", ("tests/orchestrator/run/test_schedule_units.py::test_the_typical_duration_is_the_median_of_the_latest_sixteen_finished_tasks_of_a_kind",)),
    Mutant("M259", "a trial that ends never frees its room: the cluster's trials in flight only grow", "orchestrator/run/schedule.py", "self._in_flight[kind] = self._in_flight.get(kind, 0) - 1", "self._in_flight[kind] = self._in_flight.get(kind, 0)", ("tests/orchestrator/run/test_schedule_units.py::test_trials_in_flight_stay_within_each_resource_kinds_limit_and_free_their_room_when_done",)),
    Mutant("M260", "bundles take a floored share of the ready work (more trials than slots)", "orchestrator/run/schedule.py", "max(1, -(-ready.size(group) // self._limit(head)))", "max(1, ready.size(group) // self._limit(head))", ("tests/orchestrator/run/test_schedule_units.py::test_a_bundle_takes_its_share_of_the_ready_work_rounded_up",)),
    Mutant("M261", "every training task goes through Ray Train, single-worker ones too", "orchestrator/run/schedule.py", "if task.resources.workers > 1 and task.kind in TRAINING_KINDS:", "if task.resources.workers >= 1 and task.kind in TRAINING_KINDS:", ("tests/orchestrator/run/test_schedule_units.py::test_only_a_training_task_with_several_workers_runs_through_ray_train",)),
    Mutant("M262", "the first stop signal is not remembered: a second one does not end the driver at once", "orchestrator/run/signals.py", "        self.stopping = True\n        log.warning", "        pass\n        log.warning", ("tests/orchestrator/run/test_signals.py::test_a_second_stop_signal_ends_the_driver_at_once_and_a_new_run_starts_afresh",)),
    Mutant("M263", "every Ray Train rank writes the epoch's resume state", "orchestrator/run/distributed.py", "        if rank == 0:\n            save(report)", "        if True:\n            save(report)", ("tests/orchestrator/run/test_distributed_units.py::test_only_rank_zero_stores_the_epochs_state_and_every_rank_reports_each_epoch",)),
    Mutant("M264", "status's ETA reads the overlap of the oldest finished tasks", "orchestrator/status.py", "recent = done.sort_values(\"finished_at\").tail(RECENT_TASKS)", "recent = done.sort_values(\"finished_at\").head(RECENT_TASKS)", ("tests/orchestrator/test_status.py::test_the_sweep_eta_reads_the_overlap_of_the_latest_finished_tasks_only",)),
    Mutant("M265", "a run that Tune left with tasks pending is reported finished, not interrupted", "orchestrator/run/sweep.py", "if interrupted is None and (state.count(vocab.RUNNING) or state.count(vocab.PENDING)):", "if interrupted is None and state.count(vocab.RUNNING):", ("tests/orchestrator/run/test_sweep_steps.py::test_a_run_that_tune_left_with_tasks_pending_is_an_interrupt",)),
    Mutant("M266", "the SQL fast path keeps the first value of a step as the latest metric, not MLflow's largest", "orchestrator/run/tracking_sql.py", 'if key not in latest or (step, value) > (latest[key]["step"], latest[key]["value"]):', 'if key not in latest or step > latest[key]["step"]:', ("tests/orchestrator/run/test_tracking_sql.py::test_the_sql_path_leaves_the_rows_mlflows_client_leaves",)),
    Mutant("M267", "the SQL fast path's child runs point at another experiment's datasets", "orchestrator/run/tracking_sql.py", "m.SqlDataset.experiment_id == self.experiment_id,", "True,", ("tests/orchestrator/run/test_tracking_sql.py::test_the_sql_path_leaves_the_rows_mlflows_client_leaves",)),
    Mutant("M268", "the lock's create on S3 is an unconditional PUT: two drivers both win", "orchestrator/storage/conditional.py", 'Body=data, IfNoneMatch="*")', "Body=data)", ("tests/orchestrator/storage/test_conditional.py::test_of_two_creations_of_the_same_object_exactly_one_succeeds",)),
    Mutant("M269", "after a failed SQL batch every later batch tries SQL again (a warning per batch)", "orchestrator/run/tracking.py", "                self.sql = None\n", "                pass\n", ("tests/orchestrator/run/test_tracking.py::test_after_a_failed_batch_every_later_batch_goes_run_by_run",)),
    Mutant("M270", "a symbolic link inside a sweep directory is followed", "orchestrator/storage/layout.py", "            if stat.S_ISLNK(mode):", "            if False:", ("tests/orchestrator/storage/test_layout.py::test_a_symbolic_link_inside_the_sweep_is_refused_and_the_storage_root_may_be_one",)),
    Mutant("M271", "Ray's file system pickles the storage credentials", "orchestrator/storage/layout.py", "if k not in _CREDENTIALS}, self.token)", "}, self.token)", ("tests/orchestrator/storage/test_layout.py::test_ray_gets_a_path_and_a_file_system_that_pickles_without_credentials",)),
    Mutant("M272", "a group run keeps one error more than GROUP_ERRORS", "orchestrator/run/tracking.py", "len(self.errors) < GROUP_ERRORS", "len(self.errors) <= GROUP_ERRORS", ("tests/orchestrator/run/test_tracking.py::test_a_group_run_averages_its_finished_tasks_and_keeps_the_first_errors_redacted",)),
    Mutant("M273", "pyarrow's '[errno 13]' in an error's text is not read: a permission refusal is reported as another failure", "orchestrator/storage/read_only.py", 'codes = [getattr(exc, "errno", None), *(int(n) for n in _ERRNO_IN_TEXT.findall(str(exc)))]', 'codes = [getattr(exc, "errno", None)]', ("tests/orchestrator/storage/test_layout.py::test_a_write_refusal_is_told_from_other_failures_by_its_errno_or_its_text",)),
    Mutant("M274", "a Databricks store gets a local browse URL where nothing is served", "orchestrator/run/tracking.py", '    if tracking_uri.startswith("databricks"):\n        return None\n    base', '    base', ("tests/orchestrator/run/test_tracking.py::test_urls_and_commands_for_every_kind_of_store_hide_credentials",)),
    Mutant("M275", "the accuracy chord barrier on path figures is a rise, not a drop", "orchestrator/report/plots.py", "(\"acc\", 100.0, -1.0)", "(\"acc\", 100.0, 1.0)", ("tests/orchestrator/report/test_plots.py::test_the_barrier_notes_are_the_mean_and_std_over_pairs_of_each_pairs_chord_barrier",)),
    Mutant("M276", "the mechanism map's labels stay in matrix order while the heat map follows the dendrogram", "orchestrator/report/plots.py", "rows = models.iloc[order].reset_index(drop=True)", "rows = models.reset_index(drop=True)", ("tests/orchestrator/report/test_plots.py::test_the_mechanism_map_orders_rows_labels_and_heat_map_by_the_dendrogram",)),
    Mutant("M277", "the cue-reliance panels are swapped under their titles", "orchestrator/report/plots.py", "for j, column in enumerate((\"reliance_randimg\", \"reliance_randcue\")):", "for j, column in enumerate((\"reliance_randcue\", \"reliance_randimg\")):", ("tests/orchestrator/report/test_plots.py::test_the_cue_reliance_panels_plot_randimg_left_and_randcue_right_at_every_alpha_in_pp",)),
    Mutant("M278", "Table 1's chance line drawn at 0.1 % instead of 10 %", "orchestrator/report/plots.py", "ax.axhline(100 * chance, color=\"black\"", "ax.axhline(chance, color=\"black\"", ("tests/orchestrator/report/test_plots.py::test_finetune_chance_line_is_in_percent_and_the_grey_line_separates_the_references",)),
    Mutant("M279", "a pair type's loss axes stretched to every pair type's losses", "orchestrator/report/figures.py", "plots.path_loss_limits(rows).items()", "plots.path_loss_limits(paths).items()", ("tests/orchestrator/report/test_figures.py::test_a_pair_types_loss_limits_fit_its_own_rows_only",)),
    Mutant("M280", "changing plots.py does not redraw cached figures", "orchestrator/report/figures.py", "(\"figures.py\", \"plots.py\", \"stats.py\", \"mechanism_map.py\")", "(\"figures.py\", \"stats.py\", \"mechanism_map.py\")", ("tests/orchestrator/report/test_figures.py::test_the_code_version_covers_every_file_that_draws",)),
    Mutant("M281", "the barrier grid orders fine-tuning pairs alphabetically, not by the method registry", "orchestrator/report/html.py", "stats.pair_sort_key(p, FINETUNE_METHOD_NAMES)", "stats.pair_sort_key(p, ())", ("tests/orchestrator/report/test_html.py::test_the_barrier_grid_lists_pairs_in_order_names_each_pair_once_and_gives_eval_sets_in_order",)),
    Mutant("M282", "the map table's ARI shows the across-within test's p-value", "orchestrator/report/html.py", "f\"{m.ari:.2f} (p = {ari.p_upper:.3g})\"", "f\"{m.ari:.2f} (p = {test.p_upper:.3g})\"", ("tests/orchestrator/report/test_html.py::test_the_map_table_counts_clusters_and_components_and_gives_each_test_its_own_p",)),
    Mutant("M283", "a write into a missing bucket read as another driver's lock", "orchestrator/storage/conditional.py", '            if code == "NoSuchBucket":', '            if False:', ("tests/orchestrator/storage/test_conditional.py::test_a_bucket_that_does_not_exist_is_an_error_not_an_object_that_exists",)),
    Mutant("M284", "status does not name a task whose done.json was garbled after it finished", "orchestrator/status.py", '        if reason != "no done.json":', '        if reason != "no done.json" and outputs.read_marker(layout, kind, task_id) is not None:', ("tests/orchestrator/test_status.py::test_finished_tasks_whose_outputs_were_damaged_count_as_remaining",)),
    Mutant("M285", "--no-report inverted: a report only when --no-report is given", "orchestrator/cli.py", "report=not args.no_report", "report=args.no_report", ("tests/orchestrator/test_cli.py::test_every_run_flag_reaches_the_spec_key_or_the_sweep_argument_it_overrides",)),
    Mutant("M286", "run exits 0 although tasks failed or were skipped", "orchestrator/cli.py", "return EXIT_OK if outcome.ok else EXIT_TASKS_FAILED", "return EXIT_OK", ("tests/orchestrator/test_cli.py::test_run_exits_1_when_some_tasks_failed_or_were_skipped",)),
    Mutant("M287", "key=value overrides given after the options are silently dropped", "orchestrator/cli.py", "    if extra:   #", "    if False:   #", ("tests/orchestrator/test_cli.py::test_overrides_given_after_the_options_still_apply",)),
    Mutant("M288", "--wait-for-nodes ignored: the default wait always", "orchestrator/cli.py", "wait_for_nodes_s=args.wait_for_nodes", "wait_for_nodes_s=capacity.DEFAULT_WAIT_FOR_NODES_S", ("tests/orchestrator/test_cli.py::test_every_run_flag_reaches_the_spec_key_or_the_sweep_argument_it_overrides",)),
    Mutant("M289", "claims of a sweep directory accepts --new-version (and ignores it)", "orchestrator/cli.py", " or args.new_version:", ":", ("tests/orchestrator/test_cli.py::test_claims_of_a_sweep_directory_refuses_what_only_a_run_takes",)),
    Mutant("M290", "compact leaves several part files per table", "orchestrator/cli.py", "compact.compact(layout, one_part=True)", "compact.compact(layout)", ("tests/orchestrator/test_cli.py::test_compact_merges_every_table_into_one_part_and_prints_the_summary",)),
    Mutant("M291", "status --watch ignored (one snapshot only)", "orchestrator/cli.py", "watch=args.watch", "watch=False", ("tests/orchestrator/test_cli.py::test_status_flags_reach_print_status_and_its_exit_status_is_kept",)),
    Mutant("M292", "the report's note printed on stdout, mixed into the results", "orchestrator/cli.py", "print(rep.note, file=sys.stderr)", "print(rep.note)", ("tests/orchestrator/test_cli.py::test_report_prints_its_note_on_stderr_and_its_text_and_page_on_stdout",)),
    Mutant("M293", "a local Ray waited for as long as --wait-for-nodes says, for nodes that never come", "orchestrator/run/sweep.py", "wait_s=wait_for_nodes_s if address else 0", "wait_s=wait_for_nodes_s", ("tests/orchestrator/run/test_sweep_steps.py::test_only_a_cluster_at_an_address_is_waited_for",)),
    Mutant("M294", "joined evaluation sums per-sample losses in float32 (a huge loss swallows the small ones)", "tasks/evaluate.py", 'reduction="none").double()', 'reduction="none")', ("tests/tasks/test_evaluate.py::test_per_sample_losses_are_summed_in_float64_so_a_huge_loss_does_not_swallow_the_small_ones",)),
    Mutant("M295", "DDP: fit sums the ranks' gradients instead of averaging them", "tasks/train.py", "all_reduce_gradients(params, world_size)", "all_reduce_gradients(params, 1)", ("tests/tasks/test_science_train.py::test_under_two_ranks_fit_steps_with_the_mean_gradient_and_reports_the_epoch_over_both_ranks_samples",)),
    Mutant("M296", "a start_epoch contradicting the resume state is silently overridden", "tasks/train.py", "if start_epoch not in (0, resume.epoch):", "if False:", ("tests/tasks/test_science_train.py::test_a_start_epoch_that_contradicts_the_resume_state_is_refused",)),
    Mutant("M297", "a model entry point is looked up in the dataset group", "tasks/models.py", "builder = MODELS.get(name) or plugins.resolve(name, plugins.MODEL_GROUP)", "builder = MODELS.get(name) or plugins.resolve(name, plugins.DATASET_GROUP)", ("tests/tasks/test_plugins.py::test_an_entry_point_is_resolved_loaded_and_versioned_from_its_own_group",)),
    Mutant("M298", "a meta.json holding JSON that is not an object crashes the resume", "tasks/checkpoint.py", 'if not isinstance(record, dict) or not isinstance(record.get("sha256"), str)', 'if not isinstance(record.get("sha256"), str)', ("tests/tasks/test_checkpoint.py::test_a_meta_json_that_holds_no_checkpoint_record_is_a_corrupt_checkpoint",)),
    Mutant("M299", "SGD momentum 1 accepted by the settings", "tasks/settings/train.py", "setting(0.9, ge=0, lt=1,", "setting(0.9, ge=0, le=1,", ("tests/tasks/test_train.py::test_optimiser_settings_refuse_values_outside_their_meaningful_range",)),
    Mutant("M300", "randimg's derangement drawn from the randcue stream", "tasks/data.py", 'gen = generator(seed, "randimg")', 'gen = generator(seed, "randcue")', ("tests/tasks/test_data.py::test_every_dominoes_draw_comes_from_its_own_named_stream",)),
    Mutant("M301", "training dominoes cue painted from the stream that chose the cued samples", "tasks/data.py", 'generator(cue_seed, "train_cue")', 'generator(cue_seed, "cued")', ("tests/tasks/test_data.py::test_every_dominoes_draw_comes_from_its_own_named_stream",)),
    Mutant("M302", "a user dataset's test labels handed out uint8, not int64", "tasks/data.py", "torch.from_numpy(arrays.y_test.astype(np.int64)), cue, cue)", "torch.from_numpy(arrays.y_test), cue, cue)", ("tests/tasks/test_data.py::test_a_user_datasets_uint8_labels_are_loaded_as_int64",)),
    Mutant("M303", "drop_last=False loses a final batch of one row", "tasks/data.py", "stop = n - n % batch_size if drop_last else n", "stop = n - n % batch_size if drop_last else n - 1", ("tests/tasks/test_data.py::test_a_final_batch_of_one_row_is_kept_with_drop_last_false",)),
    Mutant("M304", "a truncated .gz IDX file escapes as a bare EOFError", "tasks/datasets.py", "except (OSError, EOFError) as exc:", "except OSError as exc:", ("tests/tasks/test_datasets.py::test_a_truncated_gzip_idx_file_is_a_data_error_naming_the_file",)),
    Mutant("M305", "a partial .part file left behind when every mirror fails", "tasks/datasets.py", "    part.unlink(missing_ok=True)\n    raise DataError", "    raise DataError", ("tests/tasks/test_datasets.py::test_a_download_cut_off_on_every_mirror_leaves_no_partial_file",)),
    Mutant("M306", "a dataset of your own accepts the dominoes cue", "tasks/settings/data.py", '            allowed = ("box",)', "            allowed = CUES", ("tests/tasks/test_data.py::test_data_settings_refuse_a_negative_cue_proportion_or_cue_seed_and_dominoes_cues_on_your_own_data",)),
    Mutant("M307", "BN re-estimation keeps old buffers (NaN/inf survive momentum 1.0)", "tasks/paths.py", "layer.reset_running_stats()", "pass", ("tests/tasks/test_paths.py::test_reset_bn_forgets_non_finite_old_statistics",)),
    Mutant("M308", "image-patch moments with unfold's dilation and padding swapped", "tasks/paths.py", "F.unfold(piece.double(), conv.kernel_size, conv.dilation, conv.padding, conv.stride)", "F.unfold(piece.double(), conv.kernel_size, conv.padding, conv.dilation, conv.stride)", ("tests/tasks/test_paths.py::test_folded_bn_and_the_reset_pass_keep_the_function_of_a_model_of_ones_own",)),
    Mutant("M309", "any method after a BN taken as its ReLU (folded or fused away)", "tasks/paths.py", 'return node.target == "relu" and len(node.args) == 1', "return len(node.args) == 1", ("tests/tasks/test_paths.py::test_folded_bn_and_the_reset_pass_keep_the_function_of_a_model_of_ones_own",)),
    Mutant("M310", "resampled BN sample drawn from the midpoint-alpha stream", "tasks/paths.py", "generator(seed, _TAG_BN_SAMPLE, alpha_index)", "generator(seed, _TAG_ALPHA, alpha_index)", ("tests/tasks/test_science_paths.py::test_a_resampled_bn_sample_is_a_draw_from_its_documented_stream",)),
    Mutant("M311", "midpoint batches from the untagged seed (an endpoint's order replayed)", "tasks/paths.py", "seed=derive_seed(self.seed, _TAG_BATCHES)", "seed=self.seed", ("tests/tasks/test_science_paths.py::test_the_control_points_batches_cover_the_data_each_epoch_in_their_own_order",)),
    Mutant("M312", "midpoint training counts the wrong predictions as correct", "tasks/paths.py", "yield loss, int((logits.argmax(1) == y).sum()), len(y)", "yield loss, int((logits.argmax(1) != y).sum()), len(y)", ("tests/tasks/test_science_paths.py::test_the_control_points_objective_counts_the_correct_predictions_at_the_curve_point",)),
    Mutant("M313", "the scratch model ends with alpha 1's stored, not re-estimated, BN statistics", "tasks/paths.py", "final.update({k: v.clone() for k, v in scratch.state_dict().items()})", "final.update(dict(state))", ("tests/tasks/test_paths.py::test_the_scratch_model_ends_holding_the_re_estimated_alpha_1_state",)),
    Mutant("M314", "the fresh llrt head's bias drawn from a restarted stream (a copy of its first weights)", "tasks/finetune.py", "head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))", "head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=generator(seed, \"llrt-head\")))", ("tests/tasks/test_science_finetune.py::test_reset_head_draws_the_bias_after_the_weights_not_a_copy_of_them",)),
    Mutant("M315", "llrt curve accuracy counts the misclassified images", "tasks/finetune.py", "yield F.cross_entropy(logits, y), int((logits.argmax(1) == y).sum()), len(y)", "yield F.cross_entropy(logits, y), int((logits.argmax(1) != y).sum()), len(y)", ("tests/tasks/test_science_finetune.py::test_llrt_curve_rows_are_the_heads_loss_and_accuracy_on_the_clean_subset_before_each_step",)),
    Mutant("M316", "unpaired invariance one-hot over the batch size, not the classes", "tasks/finetune.py", "class_mean_invariance(f_clean, y, f_cue, y_cue, logits.shape[1])", "class_mean_invariance(f_clean, y, f_cue, y_cue, len(y))", ("tests/tasks/test_finetune.py::test_a_clean_batch_smaller_than_the_number_of_classes_gets_its_invariance_term",)),
    Mutant("M317", "CBFT's cue batches in the same order every epoch", "tasks/finetune.py", "cycle),\n                                       epoch=epoch,", "cycle),\n                                       epoch=0,", ("tests/tasks/test_finetune.py::test_cbft_draws_its_clean_and_cue_batches_in_a_new_order_each_epoch",)),
    Mutant("M318", "twins stacked before their clean images (cross-entropy on the cued twins)", "tasks/finetune.py", "torch.stack([clean.x, twins.to(clean.x.device)], dim=1)", "torch.stack([twins.to(clean.x.device), clean.x], dim=1)", ("tests/tasks/test_finetune.py::test_twins_pair_each_clean_subset_image_first_with_its_cued_twin_second",)),
    Mutant("M319", "a fine-tuning method handed the unrestricted settings (undeclared reads unnoticed)", "tasks/finetune.py", "return FINETUNE_METHODS[method](model, data, view,", "return FINETUNE_METHODS[method](model, data, settings,", ("tests/tasks/test_finetune.py::test_a_method_reads_exactly_the_settings_its_task_id_holds",)),
    Mutant("M320", "from_identity drops keys that are no setting (a renamed field reads as its default)", "tasks/settings/__init__.py", "    if unknown:\n        raise SettingsError(cls.__name__", "    if False:\n        raise SettingsError(cls.__name__", ("tests/tasks/test_settings.py::test_from_identity_refuses_a_key_that_is_no_setting_of_the_kind",)),
    Mutant("M321", "a negative CBFT margin accepted", "tasks/settings/finetune.py", "margin: float = setting(1.0, ge=0,", "margin: float = setting(1.0, ge=None,", ("tests/tasks/test_settings.py::test_finetune_settings_refuse_values_that_mean_nothing_and_accept_the_least_that_does",)),
    Mutant("M322", "activation correlation: B's variance not clamped at 0 (a constant channel of B gives NaN)", "tasks/align.py", "std_b = (sbb - sb**2).clamp_min(0).sqrt()", "std_b = (sbb - sb**2).sqrt()", ("tests/tasks/test_align.py::test_a_constant_channel_of_model_b_correlates_zero_with_every_channel_not_nan",)),
    Mutant("M323", "activation capture leaves its forward hooks on both models", "tasks/align.py", "            hook.remove()", "            pass", ("tests/tasks/test_align.py::test_activation_matching_leaves_no_hook_on_either_model",)),
    Mutant("M324", "weight matching's default seed is 1, not 0", "tasks/align.py", "max_iter: int = 100, seed: int = 0) -> Perms:", "max_iter: int = 100, seed: int = 1) -> Perms:", ("tests/tasks/test_align.py::test_weight_matching_without_a_seed_uses_seed_0",)),
    Mutant("M325", "the tracer ignores a functional pool's keyword padding", "tasks/permutation.py", 'padding = args[3] if len(args) > 3 else node.kwargs.get("padding", 0)', "padding = args[3] if len(args) > 3 else 0", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M326", "adaptive pooling that keeps a spatial axis taken for 1x1 (flatten mixes channels)", "tasks/permutation.py", "all(s == 1 or s is None and x.flat for s in sizes)", "all(s == 1 or s is None for s in sizes)", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M327", "a broadcast add refused only when the larger map was traced first", "tasks/permutation.py", "if a != _FIXED and size_a != size_b:", "if a != _FIXED and size_a > size_b:", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M328", "torch.flatten(h) without start_dim taken as flatten(h, 1) (batch and channels merged)", "tasks/permutation.py", 'return self._flatten(node, self._tensor(node, args[0]), *_params(node, ("start_dim", 0), ("end_dim", -1)))', 'return self._flatten(node, self._tensor(node, args[0]), *_params(node, ("start_dim", 1), ("end_dim", -1)))', ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M329", "an underpowered equivalence counts seeds for the mean's size, not its distance to the nearer bound", "orchestrator/report/comparisons.py", "power, scale, unit, margin - abs(diff.mean)), p_other=p)", "power, scale, unit), p_other=p)", ("tests/orchestrator/report/test_comparisons.py::test_an_underpowered_equivalence_counts_seeds_for_the_distance_to_the_nearer_bound",)),
    Mutant("M330", "two groups' pooled SD taken from group a alone", "orchestrator/report/comparisons.py", "pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)", "pooled = math.sqrt((a.var(ddof=1) + a.var(ddof=1)) / 2)", ("tests/orchestrator/report/test_comparisons.py::test_two_groups_of_unequal_spread_pool_both_variances",)),
    Mutant("M331", "superiority decided when the interval only touches 0", "orchestrator/report/comparisons.py", "if diff.low > 0:", "if diff.low >= 0:", ("tests/orchestrator/report/test_comparisons.py::test_an_interval_that_only_touches_the_bound_decides_neither_way",)),
    Mutant("M332", "Holm rejects only strictly below its bar", "orchestrator/report/verdicts.py", "family[rejected].p_other <= half / (k - rejected)", "family[rejected].p_other < half / (k - rejected)", ("tests/orchestrator/report/test_verdicts.py::test_a_p_value_exactly_at_holms_bar_is_rejected",)),
    Mutant("M333", "'does not hold' names the supporting check decided the other way", "orchestrator/report/verdicts.py", "the data show the opposite of {quoted(self._those(NO))}", "the data show the opposite of {quoted(self._those(NO, False))}", ("tests/orchestrator/report/test_verdicts.py::test_does_not_hold_names_the_required_comparison_decided_the_other_way_not_a_supporting_one",)),
    Mutant("M334", "Table 1 counts an unmeasured accuracy as a seed", "orchestrator/report/stats.py", 'agg(n="count", mean="mean"', 'agg(n="size", mean="mean"', ("tests/orchestrator/report/test_stats.py::test_a_seed_without_an_accuracy_is_not_counted_in_table_one",)),
    Mutant("M335", "summary rows in task-completion order (summary.md not reproducible)", "orchestrator/report/stats.py", "barriers.groupby(by, dropna=False, sort=True)", "barriers.groupby(by, dropna=False, sort=False)", ("tests/orchestrator/report/test_stats.py::test_a_summary_does_not_depend_on_the_order_the_rows_came_in",)),
    Mutant("M336", "endpoint drift's accuracy interval taken from the loss", "orchestrator/report/stats.py", "acc.mean, acc.ci_low, acc.ci_high])", "acc.mean, loss.ci_low, loss.ci_high])", ("tests/orchestrator/report/test_stats.py::test_endpoint_drift_intervals_are_the_t_intervals_of_each_drift",)),
    Mutant("M337", "a permutation test whose smallest p-value is exactly alpha/2 called not testable", "orchestrator/report/comparisons.py", "if min_p > half:", "if min_p >= half:", ("tests/orchestrator/report/test_comparisons.py::test_a_permutation_p_value_exactly_at_half_alpha_decides_and_is_reachable",)),
    Mutant("M338", "relabelings drawn at random called exact when as many as there are partitions (draws repeat)", "orchestrator/report/mechanism_map.py", "    perms, exact = labelings(groups, n, seed)\n    same =", "    perms, exact = labelings(groups, n, seed)\n    exact = perms.shape[0] == math.comb(groups.size, int(groups.sum()))\n    same =", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_random_relabelings_one_short_of_every_partition_are_not_exact",)),
    Mutant("M339", "claim (d) without Holm's step-down: a comparison decided the other way by its own interval alone fails the claim", "orchestrator/report/claims.py", "(floor, vocab.LINEAR), eval_set, None)\n    return family_wise(c, r.level)", "(floor, vocab.LINEAR), eval_set, None)\n    return c", ("tests/orchestrator/report/test_claims.py::test_a_comparison_of_b_c_or_d_decided_the_other_way_only_by_its_own_interval_cannot_fail_the_claim",)),
    Mutant("M340", "(b) naive fine-tuning's reliance compared with every cue model of its seed, not its own parent", "orchestrator/report/claims.py", "s.reliance(s.parents(NAIVE))", "s.reliance(s.models(vocab.PRETRAIN, cue=True))", ("tests/orchestrator/report/test_claims.py::test_b_compares_naive_fine_tuning_with_its_own_parent_not_the_seeds_other_cue_models",)),
    Mutant("M341", "each cue proportion's chance-floor guard computed on every proportion's paths", "orchestrator/report/claims.py", "keep(paths) if not paths.empty else paths", "paths", ("tests/orchestrator/report/test_claims.py::test_the_chance_floor_of_each_cue_proportion_is_judged_on_its_own_paths",)),
    Mutant("M342", "'no reliance left' judged within the reliance effect, not the rules' no_reliance_margin", "orchestrator/report/claims.py", 'decision = cmp.equivalence(diff, margin, self.r.power, PP, " pp")', 'decision = cmp.equivalence(diff, self.r.reliance_effect, self.r.power, PP, " pp")', ("tests/orchestrator/report/test_claims.py::test_no_reliance_left_is_judged_within_the_rules_equivalence_margin_not_the_reliance_effect",)),
    Mutant("M343", "the claims' barrier comparisons read loss barriers whatever the rules' barrier_metric", "orchestrator/report/claims.py", "return self.s.barrier(*pair, eval_set, self.r.barrier_metric, definition or self.r.barrier_definition)", 'return self.s.barrier(*pair, eval_set, "loss", definition or self.r.barrier_definition)', ("tests/orchestrator/report/test_claims.py::test_barrier_comparisons_read_the_barriers_of_the_rules_metric",)),
    Mutant("M344", "claim (e)'s chance-floor guard drops the accuracy tolerance", "orchestrator/report/claims.py", "cmp.at_floor(lo_acc, hi_loss, m.chance, r.floor_acc, r.floor_loss)", "cmp.at_floor(lo_acc, hi_loss, m.chance, 0.0, r.floor_loss)", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_claim_e_decided_the_other_way_on_within_group_paths_at_the_chance_floor_is_not_testable",)),
    Mutant("M345", "the mechanism map's matrix built from the check definition's barriers", "orchestrator/report/mechanism_map.py", "rows = _rows(part, eval_set, path, rules.barrier_definition)", "rows = _rows(part, eval_set, path, rules.check_definition or rules.barrier_definition)", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_a_map_uses_the_rules_definition_and_checks_it_on_the_check_definition",)),
    Mutant("M346", "claim (e)'s within-across statistic counts each model with itself as a within pair", "orchestrator/report/mechanism_map.py", "    iu = np.triu_indices(k, 1)\n    values = matrix[iu]", "    iu = np.triu_indices(k)\n    values = matrix[iu]", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_the_within_across_statistic_and_its_null_are_the_means_over_pairs_for_every_relabeling",)),
    # ----- the fifth blind hunt: planning, specs, result tables, what the driver records, the report's build and the API
    Mutant("M347", "a population pair's second alignment method taken for already planned (path slot without its alignment)", "orchestrator/graph/dag.py", "return a.id, b.id, canonical_json([base, kind, alignment, via])", "return a.id, b.id, canonical_json([base, kind, via])", ("tests/orchestrator/graph/test_pairing.py::test_every_population_pair_is_aligned_by_every_alignment_method",)),
    Mutant("M348", "a cross-seed population pair evaluated on endpoint A's seed's clean data", "orchestrator/graph/dag.py", "self._eval_data[pair.seed] = data_identity(self.data_settings(0.0, pair.seed))", "self._eval_data[pair.seed] = data_identity(self.data_settings(0.0, a.labels[\"seed\"]))", ("tests/orchestrator/graph/test_pairing.py::test_a_population_pair_across_seeds_aligns_and_evaluates_on_the_smaller_seeds_clean_data",)),
    Mutant("M349", "midpoint tasks lose their midpoint settings (a swept midpoint setting leaves them unlabelled)", "orchestrator/graph/dag.py", "mid_settings = {**lineage, **settings_values(\"midpoint\", v.midpoint)}", "mid_settings = {**lineage}", ("tests/orchestrator/graph/test_pairing.py::test_a_swept_midpoint_or_alignment_setting_labels_exactly_the_tasks_that_read_it",)),
    Mutant("M350", "the self control's path records the spec's bn_sample, not the resample it runs with", "orchestrator/graph/dag.py", "eval_settings = {**lineage, **settings_values(\"paths\", paths)}", "eval_settings = {**lineage, **settings_values(\"paths\", v.paths)}", ("tests/orchestrator/graph/test_pairing.py::test_the_self_controls_path_records_the_fresh_bn_samples_it_runs_with_whatever_the_spec_sweeps",)),
    Mutant("M351", "pretrained models labelled without their width (two widths pool)", "orchestrator/graph/dag.py", "model=self.model.label, seed=m.seed", "model=self.model.name, seed=m.seed", ("tests/orchestrator/graph/test_pairing.py::test_two_widths_of_one_architecture_are_told_apart_in_the_model_label_of_every_task",)),
    Mutant("M352", "the population planned for the first swept combination only", "orchestrator/graph/dag.py", "        for plan in plans:\n            plan.build_population()", "        for plan in plans[:1]:\n            plan.build_population()", ("tests/orchestrator/graph/test_pairing.py::test_every_combination_of_swept_values_gets_its_own_population_paths",)),
    Mutant("M353", "the plan shows gpus as cpus and cpus as gpus", "orchestrator/graph/dag.py", "{r.cpus:g} cpu, {r.gpus:g} gpu", "{r.gpus:g} cpu, {r.cpus:g} gpu", ("tests/orchestrator/graph/test_pairing.py::test_the_plan_text_of_a_tiny_sweep_is_the_one_written_out_by_hand",)),
    Mutant("M354", "a seeded generator made on the CPU whatever device is asked for", "tasks/seeding.py", "gen = torch.Generator(device=device)", "gen = torch.Generator()", ("tests/orchestrator/graph/test_pairing.py::test_a_generator_is_made_on_the_device_asked_for_and_seeded_from_the_derived_seed",)),
    Mutant("M355", "the aligned path reusing the linear rows loses reliance_randimg", "orchestrator/run/work.py", '"agree_b", "reliance_randimg", "reliance_randcue")', '"agree_b", "reliance_randcue")', ("tests/orchestrator/run/test_work.py::test_the_aligned_path_of_an_identity_alignment_keeps_every_measured_column_of_the_linear_rows",)),
    Mutant("M356", "a resumed LP-FT task labels its saved head epochs train", "orchestrator/run/work.py", 'return finetune_lib.curve_split(task.config["method"], epoch, settings)', 'return "train"', ("tests/orchestrator/run/test_work.py::test_lpft_labels_its_head_epochs_llrt_and_every_later_epoch_train",)),
    Mutant("M357", "a finished task's per-epoch resume state is never deleted", "orchestrator/run/work.py", '_drop_resume_state(env.layout, task)', 'pass', ("tests/orchestrator/run/test_work.py::test_execute_drops_the_resume_state_of_a_task_that_finished_and_keeps_that_of_one_that_failed",)),
    Mutant("M358", "config_json holds the settings, not the config the task id hashes", "orchestrator/run/recording.py", '"config_json": canonical_json(task.config)', '"config_json": canonical_json(task.settings)', ("tests/orchestrator/run/test_recording.py::test_a_tasks_row_holds_the_sweeps_hash_and_revision_the_error_and_the_config_its_id_hashes",)),
    Mutant("M359", "a bundle compacts every tasks fragment of a batch from the batch's first row", "orchestrator/run/recording.py", 'kept[2].slice(kept[3], 1))', 'kept[2].slice(0, 1))', ("tests/orchestrator/run/test_recording.py::test_the_kept_rows_of_each_fragment_are_its_own_row_with_the_digest_and_size_of_its_bytes",)),
    Mutant("M360", "a task's duration and start time swapped on the way to the tasks table and MLflow", "orchestrator/run/recording.py", 's.error_type, s.duration_s, s.started_at, time.time()', 's.error_type, s.started_at, s.duration_s, time.time()', ("tests/orchestrator/run/test_recording.py::test_the_recorder_hands_on_each_tasks_own_start_and_duration",)),
    Mutant("M361", "the sweep ETA averages cached tasks' durations from other runs", "orchestrator/run/state.py", 'if s.status == DONE and s.duration_s is not None]', 'if s.status in (DONE, CACHED) and s.duration_s is not None]', ("tests/orchestrator/run/test_state.py::test_the_eta_is_the_mean_duration_of_the_tasks_done_now_times_the_tasks_left_over_the_concurrency",)),
    Mutant("M362", "a child run logs its CPUs as GPUs and its GPUs as CPUs", "orchestrator/run/child_runs.py", '"resources": {"cpus": task.resources.cpus, "gpus": task.resources.gpus,', '"resources": {"cpus": task.resources.gpus, "gpus": task.resources.cpus,', ("tests/orchestrator/run/test_recording.py::test_a_child_runs_params_are_its_set_labels_its_settings_and_its_resources",)),
    Mutant("M363", "a fragment whose part is lost is still taken as absorbed (its rows vanish)", "orchestrator/results/tables.py", "if entry is not None and intact.get(entry.part) and entry.matches(data):", "if entry is not None and entry.matches(data):", ("tests/orchestrator/results/test_rows.py::test_a_fragment_kept_beside_its_lost_part_restores_its_rows",)),
    Mutant("M364", "a part's zero-row tasks kept as spans (wrong rows taken)", "orchestrator/results/tables.py", "keep = [(e.offset, e.rows) for _, e in wanted if e.rows]", "keep = [(e.offset, e.rows) for _, e in wanted]", ("tests/orchestrator/results/test_rows.py::test_compacted_tasks_without_rows_read_as_no_rows_beside_the_others",)),
    Mutant("M365", "the earlier version's manifest read before the current one", "orchestrator/results/manifest.py", "for path in (layout.manifest_file(table), layout.legacy_manifest_file(table)):", "for path in (layout.legacy_manifest_file(table), layout.manifest_file(table)):", ("tests/orchestrator/results/test_rows.py::test_a_manifest_left_by_an_earlier_version_does_not_hide_the_current_one",)),
    Mutant("M366", "a manifest entry at a negative offset accepted", "orchestrator/results/manifest.py", "or offset < 0 or", "or", ("tests/orchestrator/results/test_rows.py::test_a_manifest_of_another_table_or_with_negative_places_is_refused",)),
    Mutant("M367", "status --watch's hash cache keyed by path alone (a changed file vouched for)", "orchestrator/results/outputs.py", "key = (path, *stamp)", "key = path", ("tests/orchestrator/results/test_rows.py::test_a_file_changed_after_it_was_hashed_is_hashed_again",)),
    Mutant("M368", "a marker of an unknown version counted as finished", "orchestrator/results/outputs.py", "or data.get(\"version\") not in MARKER_VERSIONS:", "or data.get(\"version\") is None:", ("tests/orchestrator/results/test_rows.py::test_a_marker_of_an_unknown_version_or_shape_is_not_finished",)),
    Mutant("M369", "an empty task_ids (a plan of no task) reads every row", "orchestrator/results/tables.py", "planned = None if task_ids is None else frozenset(task_ids)", "planned = frozenset(task_ids) if task_ids else None", ("tests/orchestrator/results/test_rows.py::test_one_column_named_alone_and_an_empty_choice_of_tasks",)),
    Mutant("M370", "repair absorbs every new fragment", "orchestrator/results/compact.py", "return _quietly(layout, REPAIR_ONLY, log)", "return _quietly(layout, 1, log)", ("tests/orchestrator/results/test_rows.py::test_repair_deletes_absorbed_copies_and_leaves_new_fragments_as_they_are",)),
    Mutant("M371", "a spec of another dataset takes the digits profile", "orchestrator/spec/sweep_spec.py", 'full = with_profile(spec, data.get("dataset", DEFAULT_DATASET) if isinstance(data, dict) else DEFAULT_DATASET)', 'full = with_profile(spec, DEFAULT_DATASET)', ("tests/orchestrator/spec/test_spec.py::test_a_spec_of_another_dataset_starts_from_that_datasets_profile",)),
    Mutant("M372", "the spec hash depends on the order keys are written in", "orchestrator/spec/sweep_spec.py", 'text = json.dumps(science(spec.resolved), sort_keys=True, separators=(",", ":"))', 'text = json.dumps(science(spec.resolved), separators=(",", ":"))', ("tests/orchestrator/spec/test_spec_hash.py::test_the_order_keys_are_written_in_a_zipped_axis_is_not_a_new_spec",)),
    Mutant("M373", "a science key removed from the new spec is no difference", "orchestrator/spec/sweep_spec.py", "for key in sorted(set(old) | set(new), key=str):", "for key in sorted(set(new), key=str):", ("tests/orchestrator/spec/test_spec_hash.py::test_a_science_key_the_new_spec_no_longer_has_is_a_difference",)),
    Mutant("M374", "with_top writes the last combination into the resolved spec (the hash changes with --storage)", "orchestrator/spec/sweep_spec.py", "return replace(self, top=top, resolved=_resolved(top, self.variants[0]))", "return replace(self, top=top, resolved=_resolved(top, self.variants[-1]))", ("tests/orchestrator/spec/test_spec_hash.py::test_a_swept_spec_given_other_storage_is_the_same_spec",)),
    Mutant("M375", "the task estimate ignores the combinations of swept values", "orchestrator/spec/rules.py", "return n_variants * len(top.models) * (len(top.seeds) * per_seed + population)", "return len(top.models) * (len(top.seeds) * per_seed + population)", ("tests/orchestrator/spec/test_spec_rules.py::test_the_estimate_is_the_number_of_planned_tasks",)),
    Mutant("M376", "a self pair alone with paths.kinds [] trains its model and evaluates nothing", "orchestrator/spec/rules.py", '(("paths.kinds", top.paths.kinds, other or selfs),', '(("paths.kinds", top.paths.kinds, other),', ("tests/orchestrator/spec/test_spec_rules.py::test_a_self_pair_alone_with_no_path_kind_is_refused",)),
    Mutant("M377", "spawn@K refused for K of three digits (CIFAR pretrains 100 epochs)", "orchestrator/vocab.py", r"(?:@(?P<epoch>\d{1,6}))?", r"(?:@(?P<epoch>\d{1,2}))?", ("tests/orchestrator/test_vocab.py::test_a_spawn_pair_may_share_more_than_99_epochs",)),
    Mutant("M378", "a disabled population's path kinds count as using the alignments", "orchestrator/spec/rules.py", "used = evaluated | (set(pop.path_kinds) if pop.enabled else set())", "used = evaluated | set(pop.path_kinds)", ("tests/orchestrator/spec/test_spec_rules.py::test_keys_that_serve_no_planned_task_but_ask_for_nothing_are_not_refused",)),
    Mutant("M379", "the report's failed-task list shows a task that failed and then finished on a retry", "orchestrator/report/build.py", 'failed=_latest(tasks)[_latest(tasks)["status"] == vocab.FAILED] if not tasks.empty else tasks,', 'failed=tasks[tasks["status"] == vocab.FAILED] if not tasks.empty else tasks,', ("tests/orchestrator/report/test_build.py::test_the_pages_failed_tasks_are_those_whose_latest_row_failed",)),
    Mutant("M380", "Table 1 drops a swept value whose fine-tunings all failed", "orchestrator/report/build.py", 'combos = stats.swept_combos([ev, tasks[tasks["kind"] == vocab.FINETUNE]] if not tasks.empty else [ev], swept)', 'combos = stats.swept_combos([ev], swept)', ("tests/orchestrator/report/test_build.py::test_table_1_keeps_a_swept_value_whose_fine_tunings_all_failed",)),
    Mutant("M381", "finetune_table.parquet loses each facet's swept value", "orchestrator/report/build.py", 'long = pd.concat([t.long.assign(**{k: v for k, v in combo.items()}) for combo, t in table1], ignore_index=True)', 'long = pd.concat([t.long for combo, t in table1], ignore_index=True)', ("tests/orchestrator/report/test_build.py::test_the_finetune_table_parquet_carries_each_facets_swept_value",)),
    Mutant("M382", "the terminal barrier table's n counts summary rows, not pairs", "orchestrator/report/build.py", 'cells["n"] = "/".join(sorted({str(int(n)) for n in group["n"]}))', 'cells["n"] = str(len(group))', ("tests/orchestrator/report/test_build.py::test_the_terminal_barrier_table_gives_n_pairs_and_the_mean_alone_for_one_pair",)),
    Mutant("M383", "without a plan, the progress table counts a retried task once per row", "orchestrator/report/build.py", 'for task_id, kind in (zip(latest["task_id"], latest["kind"])', 'for task_id, kind in (zip(tasks["task_id"], tasks["kind"])', ("tests/orchestrator/report/test_build.py::test_without_a_plan_progress_counts_each_task_once_by_its_latest_row_in_pipeline_order",)),
    Mutant("M384", "status prints a failed task's error with a URI's credentials", "orchestrator/status.py", 'return redact(text.strip().splitlines()[0])', 'return text.strip().splitlines()[0]', ("tests/orchestrator/test_status_units.py::test_a_failed_tasks_reason_is_the_first_line_of_its_error_with_credentials_hidden",)),
    Mutant("M385", "mmc.run drops its key=value overrides", "orchestrator/api.py", 'return run_sweep(load(spec, *overrides, **flags)', 'return run_sweep(load(spec, **flags)', ("tests/orchestrator/test_api_units.py::test_run_hands_every_argument_to_the_sweeps_run",)),
    Mutant("M386", "Sweep.table ignores columns= and reads every column", "orchestrator/api.py", 'return tables.read_table(self.layout, name, columns, planned)', 'return tables.read_table(self.layout, name, None, planned)', ("tests/orchestrator/test_api_units.py::test_a_tables_columns_are_only_those_asked_for_and_task_id",)),
    Mutant("M387", "status without --watch refreshes until nothing is left to run (never returns while work is left)", "orchestrator/status.py", 'if not watch or total["remaining"] == 0:', 'if not watch and total["remaining"] == 0:', ("tests/orchestrator/test_status_units.py::test_the_printed_status_shows_the_note_the_damaged_tasks_and_exits_by_failures",)),
    Mutant("M388", "a spawned child may share every pretraining epoch (it is then its parent)", "orchestrator/spec/rules.py", "if design == vocab.SPAWN and epoch >= v.pretrain.epochs:", "if design == vocab.SPAWN and epoch > v.pretrain.epochs:", ("tests/orchestrator/spec/test_spec.py::test_spawn_shares_all_but_at_least_the_last_pretraining_epoch",)),
    Mutant("M389", "a resubset control planned at a cue proportion of 1.0 (its partner is the model itself)", "orchestrator/vocab.py", "return tuple(p for p in cue_proportions if p > 0 and (design != RESUBSET or p < 1))", "return tuple(p for p in cue_proportions if p > 0)", ("tests/orchestrator/graph/test_graph.py::test_a_resubset_control_is_planned_only_below_a_cue_proportion_of_one",)),
    Mutant("M390", "default pairs the cue proportions cannot train kept (the spec is refused for a key the user never set)", "orchestrator/spec/sweep_spec.py", "if full.set_by_user(\"paths.pairs\") or not dropped or not kept:", "if True:", ("tests/orchestrator/graph/test_graph.py::test_default_pairs_that_the_proportions_cannot_train_are_left_out_and_said",)),
    Mutant("M391", "a run does not say what its spec's defaults left out", "orchestrator/run/sweep.py", "    for note in spec.notes:\n        log(f\"note: {note}\")\n", "", ("tests/orchestrator/run/test_sweep_steps.py::test_a_run_says_what_its_spec_left_out_before_it_counts_its_tasks",)),
    Mutant("M392", "a pair refused for its cue proportions also gets \"plans no task: list pairs\"", "orchestrator/spec/rules.py", "if estimate == 0 and not unservable:", "if estimate == 0:", ("tests/orchestrator/graph/test_graph.py::test_a_resubset_control_is_planned_only_below_a_cue_proportion_of_one",)),
    Mutant("M393", "an explicit data.cue_seed of 0 falls back to the data seed", "tasks/data.py", "cue_seed = settings.seed if settings.cue_seed is None else settings.cue_seed", "cue_seed = settings.cue_seed or settings.seed", ("tests/tasks/test_data.py::test_a_cue_seed_of_zero_is_a_seed_like_any_other",)),
    Mutant("M394", "the built-in digits drawn from another constant seed (other images under DATA_VERSION 2)", "tasks/data.py", "_DIGITS_SEED = 20230", "_DIGITS_SEED = 20231", ("tests/tasks/test_data.py::test_the_digits_are_data_version_twos_recipe_and_their_boxes_touch_the_ink_as_often_as_the_docs_say",)),
    Mutant("M395", "a training split whose every image is held out for validation is accepted", "tasks/data.py", "if not 0 < count < n_published:", "if not 0 < count <= n_published:", ("tests/tasks/test_data.py::test_a_user_dataset_whose_only_training_image_would_be_held_out_is_refused",)),
    Mutant("M396", "a negative rank is accepted by iterate_batches", "tasks/data.py", "if world_size < 1 or not 0 <= rank < world_size:", "if world_size < 1 or not rank < world_size:", ("tests/tasks/test_data.py::test_a_negative_rank_is_refused",)),
    Mutant("M397", "a dataset of your own is read without its data.root", "tasks/settings/data.py", "return user_dataset_info(name, root)", "return user_dataset_info(name)", ("tests/tasks/test_data.py::test_a_user_dataset_is_loaded_from_data_root",)),
    Mutant("M398", "a settings view restricted to no field refuses nothing", "tasks/settings/__init__.py", "if watch.allowed is not None and name not in watch.allowed:", "if watch.allowed and name not in watch.allowed:", ("tests/tasks/test_settings.py::test_a_view_restricted_to_no_field_refuses_every_read",)),
    Mutant("M399", "the items of a typed tuple are not held to a gt bound", "tasks/settings/__init__.py", "bounds = Rule(rule.ge, rule.gt, rule.le, rule.lt)", "bounds = Rule(rule.ge, None, rule.le, rule.lt)", ("tests/tasks/test_settings.py::test_each_item_of_a_typed_tuple_is_held_to_strict_bounds_too",)),
    Mutant("M400", "a download waits forever on a stalled mirror (no timeout)", "tasks/datasets.py", "urllib.request.urlopen(url, timeout=timeout_s)", "urllib.request.urlopen(url)", ("tests/tasks/test_datasets.py::test_fetch_url_hands_its_timeout_to_urlopen",)),
    Mutant("M401", "a cue proportion that rounds to no cued sample trains the clean model as the cued one", "tasks/data.py", "if p > 0 and not bool(cued.any()):", "if p < 0 and not bool(cued.any()):", ("tests/tasks/test_data.py::test_a_cue_proportion_that_rounds_to_no_cued_sample_is_refused_naming_one_that_cues_some",)),
    Mutant("M402", "a resubset partner whose every class is cued (its model itself) is trained as a same-data control", "tasks/data.py", "if settings.cue_seed is None or settings.cue_seed == settings.seed:", "if True:", ("tests/tasks/test_data.py::test_a_resubset_partner_whose_every_class_is_cued_is_refused_and_the_model_itself_is_not",)),
    Mutant("M403", "joined evaluation: a sample counts as finite if any one of its logits is", "tasks/evaluate.py", "finite.append(torch.isfinite(logits).all(1))", "finite.append(torch.isfinite(logits).any(1))", ("tests/tasks/test_evaluate.py::test_one_non_finite_logit_per_sample_makes_every_set_of_a_joined_evaluation_nan",)),
    Mutant("M404", "reset pass: the first convolution's folded copy ignores its dilation", "tasks/paths.py", "conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)", "conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)", ("tests/tasks/test_paths.py::test_dilated_convolutions_keep_their_dilation_when_folded_fused_or_read_as_image_patches",)),
    Mutant("M405", "reset pass re-estimates BNs that keep no running statistics", "tasks/paths.py", "isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats and node.args", "isinstance(bn, nn.modules.batchnorm._BatchNorm) and node.args", ("tests/tasks/test_paths.py::test_the_reset_pass_skips_batchnorms_that_track_no_statistics_like_reset_bn",)),
    Mutant("M406", "reset pass runs in eval mode (a dropout before a BN stops dropping)", "tasks/paths.py", "block = self.input_block\n        model.train()", "block = self.input_block\n        model.eval()", ("tests/tasks/test_paths.py::test_the_reset_pass_runs_in_train_mode_like_reset_bn_so_a_dropout_before_a_batchnorm_drops",)),
    Mutant("M407", "reset pass applies a ReLU after the first BN even where none follows", "tasks/paths.py", "self.folded = (_ConvReLU if relu else nn.Conv2d)(", "self.folded = _ConvReLU(", ("tests/tasks/test_paths.py::test_batchnorms_without_affine_parameters_or_a_following_relu_keep_their_function",)),
    Mutant("M408", "BN folding assumes affine parameters", "tasks/paths.py", "    if bn.weight is not None:\n        scale = scale * bn.weight.to(scale.dtype)", "    scale = scale * bn.weight.to(scale.dtype)", ("tests/tasks/test_paths.py::test_batchnorms_without_affine_parameters_or_a_following_relu_keep_their_function",)),
    Mutant("M409", "DDP: every rank trains the midpoint on the whole batch", "tasks/paths.py", "epoch=epoch, rank=rank, world_size=world)", "epoch=epoch, rank=0, world_size=1)", ("tests/tasks/test_science_paths.py::test_under_two_ranks_the_control_points_batches_are_each_ranks_half_of_the_one_process_batches",)),
    Mutant("M410", "num_alphas bound lets two alphas share one MLflow step", "tasks/settings/paths.py", "ge=2, le=1001", "ge=2, le=1002", ("tests/tasks/test_paths.py::test_a_path_has_at_most_1001_alphas_so_each_gets_its_own_mlflow_step",)),
    Mutant("M411", "a bare reset_bn re-estimates in bf16 on a CPU with native bf16 while evaluate runs in fp32", "tasks/paths.py", "batch_size: int = 1024, precision: str = \"fp32\", *,", "batch_size: int = 1024, precision: str = \"auto\", *,", ("tests/tasks/test_paths.py::test_a_bare_reset_bn_re_estimates_in_the_precision_a_bare_evaluate_runs_in",)),
    Mutant("M412", "a CBFT cue batch without its own size (null) spans the whole cue set instead of batch_size", "tasks/finetune.py", "settings.cue_batch_size or settings.batch_size", "settings.cue_batch_size or len(cue)", ("tests/tasks/test_finetune.py::test_a_cue_batch_without_a_size_of_its_own_is_as_large_as_the_clean_batch",)),
    Mutant("M413", "twins CBFT: no invariance gradient through the twins' features", "tasks/finetune.py", "invariance_loss(f_clean, f_twin, y, self.classes)", "invariance_loss(f_clean, f_twin.detach(), y, self.classes)", ("tests/tasks/test_finetune.py::test_the_twins_step_sends_the_invariance_gradient_through_the_clean_images_and_their_twins",)),
    Mutant("M414", "DDP: BN buffers never re-broadcast after an epoch (ranks drift apart)", "tasks/train.py", "        broadcast_state(model)  # buffers", "        pass  # buffers", ("tests/tasks/test_science_train.py::test_under_two_ranks_fit_broadcasts_every_parameter_and_buffer_first_and_after_every_epoch",)),
    Mutant("M415", "DDP: every rank draws rank 0's dropout masks", "tasks/train.py", "with _seeded_global_rng(seed, epoch, rank, device):", "with _seeded_global_rng(seed, epoch, 0, device):", ("tests/tasks/test_science_train.py::test_each_rank_of_a_data_parallel_fit_draws_its_own_global_rng_stream",)),
    Mutant("M416", "a train state loses the optimiser's non-tensor values", "tasks/train.py", "scalars.setdefault(str(index), {})[key] = value", "pass", ("tests/tasks/test_train.py::test_a_train_state_with_non_tensor_optimiser_values_round_trips_through_tensors_and_json",)),
    Mutant("M417", "vgg13's third block at width w instead of 2w", "tasks/models.py", "layout = [(w, 1), (w, 2), (2 * w, 1)", "layout = [(w, 1), (w, 2), (w, 1)", ("tests/tasks/test_models.py::test_vgg13_is_ten_convbn_relu_blocks_of_the_vgg13_widths",)),
    Mutant("M418", "a plugin versioned by a source hash when its first listed distribution is not installed", "tasks/plugins.py", "            continue\n", "            break\n", ("tests/tasks/test_plugins.py::test_a_plugin_is_versioned_by_the_first_installed_distribution_of_its_top_package",)),
    Mutant("M419", "empty parameter groups trained silently (epochs run, nothing moves)", "tasks/train.py", "    if not params:\n        raise", "    if False:\n        raise", ("tests/tasks/test_science_train.py::test_fit_refuses_parameter_groups_that_hold_no_parameter_instead_of_training_nothing",)),
    Mutant("M420", "activation matching drops a last batch of one image", "tasks/align.py", "for start in range(0, len(x), batch_size):", "for start in range(0, len(x) - 1, batch_size):", ("tests/tasks/test_align.py::test_activation_matching_scores_every_image_even_a_last_batch_of_one",)),
    Mutant("M421", "weight-matching scores accumulated in float32", "tasks/align.py", "score = torch.zeros(n, n, dtype=torch.float64, device=device)", "score = torch.zeros(n, n, dtype=torch.float32, device=device)", ("tests/tasks/test_align.py::test_weight_matching_resolves_a_gain_below_float32_precision",)),
    Mutant("M422", "weight matching re-seeds its group order every sweep", "tasks/align.py", "torch.randperm(len(groups), generator=gen)", "torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed))", ("tests/tasks/test_science_align.py::test_weight_matching_equals_the_coordinate_descent_written_out",)),
    Mutant("M423", "weight matching visits groups in name order, not the spec's", "tasks/align.py", "groups = list(spec.groups)", "groups = sorted(spec.groups)", ("tests/tasks/test_science_align.py::test_weight_matching_equals_the_coordinate_descent_written_out",)),
    Mutant("M424", "F.max_pool2d read as adaptive (kernel taken for output size)", "tasks/permutation.py", "F.max_pool2d: False, F.max_pool3d: False", "F.max_pool2d: True, F.max_pool3d: False", ("tests/tasks/test_permutation_trace.py::test_a_pool_of_kernel_one_keeps_a_larger_map_so_flatten_is_refused",)),
    Mutant("M425", "functional pool padding read from the stride argument", "tasks/permutation.py", "padding = args[3] if len(args) > 3 else", "padding = args[2] if len(args) > 3 else", ("tests/tasks/test_permutation_trace.py::test_the_tracer_follows_the_channels_through_every_supported_operation",)),
    Mutant("M426", "a ReLU no module returns is not watched at its input's module", "tasks/permutation.py", "self._point(node) or self._point(node.args[0])", "self._point(node)", ("tests/tasks/test_permutation_trace.py::test_every_relu_of_a_group_is_a_point_whether_a_module_returns_it_or_feeds_it",)),
    Mutant("M427", "view into more than two axes accepted", "tasks/permutation.py", "x.spatial_free and len(shape) == 2 and batch", "x.spatial_free and len(shape) >= 2 and batch", ("tests/tasks/test_permutation_trace.py::test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error",)),
    Mutant("M428", "view(N, C) of the input's own channels refused though view(N, -1) is accepted", "tasks/permutation.py", " or root == _FIXED and isinstance(shape[1], int)", "", ("tests/tasks/test_permutation_trace.py::test_a_view_to_the_batch_and_the_inputs_own_channels_is_accepted_as_the_minus_one_form_is",)),
    Mutant("M429", "a permutation test's lower tail at exactly alpha/2 is not decided the other way", "orchestrator/report/comparisons.py", "if p_lower <= half:", "if p_lower < half:", ("tests/orchestrator/report/test_comparisons.py::test_a_permutation_lower_tail_p_value_exactly_at_half_alpha_decides_the_other_way",)),
    Mutant("M430", "claim (a) 'more than the no-cue model (randimg)' reads the no-cue model's random-cue cost", "orchestrator/report/claims.py", "j.above(\"it relies on the cue more than the no-cue model (randimg)\", rc.get(RANDIMG, EMPTY),\n            rn.get(RANDIMG, EMPTY)", "j.above(\"it relies on the cue more than the no-cue model (randimg)\", rc.get(RANDIMG, EMPTY),\n            rn.get(RANDCUE, EMPTY)", ("tests/orchestrator/report/test_claims.py::test_a_relies_more_than_the_no_cue_model_on_randimg_reads_the_no_cue_models_randimg_reliance",)),
    Mutant("M431", "after alignment: a control with 2 seeds is never found unconnected (needs 3)", "orchestrator/report/claims.py", "if control.n >= 2 and not control.ci_high < r.aligned_works:", "if control.n >= 3 and not control.ci_high < r.aligned_works:", ("tests/orchestrator/report/test_claims.py::test_after_alignment_with_two_seeds_of_a_control_alignment_does_not_connect_is_not_testable",)),
    Mutant("M432", "claim (e)'s check-definition test reads the unfiltered model list (a model in no group shifts the matrix)", "orchestrator/report/mechanism_map.py", "other = barrier_matrix(_rows(part, eval_set, path, rules.check_definition), ids_known)", "other = barrier_matrix(_rows(part, eval_set, path, rules.check_definition), mine)", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_the_check_definitions_test_reads_the_same_models_as_the_maps_own_test",)),
    Mutant("M433", "random relabelings draw the complement group (group sizes not kept)", "orchestrator/report/mechanism_map.py", "draws = np.argsort(rng.random((n, k)), axis=1)[:, :k1]", "draws = np.argsort(rng.random((n, k)), axis=1)[:, k1:]", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_random_relabelings_follow_the_seed_they_are_given",)),
    Mutant("M434", "the mechanism map reads only `population` rows, losing pairs a pair type planned between population models", "orchestrator/report/mechanism_map.py", "    full = barrier_matrix(rows, mine)", "    full = barrier_matrix(pop, mine)", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_a_pair_a_pair_type_planned_between_population_models_is_in_the_map",)),
    Mutant("M435", "a NaN cue proportion counts as a cue model", "orchestrator/report/stats.py", "return cue_proportion is None or cue_proportion != cue_proportion or cue_proportion == 0", "return cue_proportion is None or cue_proportion == 0", ("tests/orchestrator/report/test_stats.py::test_a_pretrained_model_without_a_cue_proportion_is_the_no_cue_reference_whether_none_or_nan",)),
    Mutant("M436", "a not-testable verdict does not name a required comparison that was not measured (MISSING)", "orchestrator/report/verdicts.py", "untestable = [c for c in self.checks if c.required and c.outcome in (UNTESTABLE, MISSING)]", "untestable = [c for c in self.checks if c.required and c.outcome == UNTESTABLE]", ("tests/orchestrator/report/test_verdicts.py::test_a_claim_not_testable_for_a_comparison_not_measured_names_it_and_what_to_add",)),
    Mutant("M437", "claim (e)'s index checks carry no p-value: each decided the other way alone, never read family-wise", "orchestrator/report/claims.py", "None, ari_decision.reason, \"\",\n                                  ari_decision.p_other))", "None, ari_decision.reason))", ("tests/orchestrator/report/test_mechanism_map_rules.py::test_claim_e_reads_its_index_checks_decided_the_other_way_family_wise_like_every_supporting_check",)),
    Mutant("M438", "a new spec version's group runs continue the previous version's (another parent's) runs of the kind", 'orchestrator/run/tracking.py', 'filter_string=f"tags.`{child_runs.PARENT_TAG}` = \'{self.parent_run_id}\' AND tags.`{GROUP_TAG}` = \'{kind}\'")', 'filter_string=f"tags.`{GROUP_TAG}` = \'{kind}\'")', ("tests/orchestrator/run/test_tracking.py::test_a_sweep_above_the_threshold_gets_one_child_run_per_kind_and_its_tables",)),
    Mutant("M439", "a group run's counts and means are logged at step 0, not at the invocation", 'orchestrator/run/tracking.py', 'metrics=group.metrics(), step=self.invocation)', 'metrics=group.metrics(), step=0)', ("tests/orchestrator/run/test_tracking.py::test_a_group_runs_numbers_are_logged_at_the_step_of_this_invocation",)),
    Mutant("M440", "a relative sqlite:/// store's artifact location is not made absolute (MlflowTracker fails to start)", 'orchestrator/run/tracking.py', '(db.parent / ARTIFACTS_DIR).absolute().as_uri()', '(db.parent / ARTIFACTS_DIR).as_uri()', ("tests/orchestrator/run/test_tracking.py::test_a_relative_sqlite_store_keeps_its_artifacts_next_to_it_as_an_absolute_uri",)),
    Mutant("M441", "a probe the driver cannot write leaves no placeholder: later targets' answers are judged under the wrong key", 'orchestrator/run/visibility.py', '                checks.append({"skip": True})\n', '                pass\n', ("tests/orchestrator/run/test_visibility.py::test_a_probe_the_driver_cannot_write_leaves_the_other_paths_checks_in_their_place",)),
    Mutant("M442", "visibility probes get a soft node affinity (may run, and answer, on another node)", 'orchestrator/run/visibility.py', 'NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)', 'NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)', ("tests/orchestrator/run/test_visibility.py::test_every_node_gets_a_zero_cpu_probe_pinned_to_it_and_all_are_awaited_within_the_timeout",)),
    Mutant("M443", "the bucket check's LIST refuses a sweep prefix that does not exist yet", 'orchestrator/run/preflight.py', 'allow_not_found=True', 'allow_not_found=False', ("tests/orchestrator/run/test_preflight.py::test_a_new_sweeps_prefix_that_does_not_exist_yet_is_listed_without_failing",)),
    Mutant("M444", "on a remote (non-object) file system a new directory is deleted even when not empty", 'orchestrator/run/preflight.py', 'elif storage.exists(path) and not storage.listdir(path):', 'elif storage.exists(path):', ("tests/orchestrator/run/test_preflight.py::test_new_directories_on_a_remote_file_system_are_removed_innermost_first_and_only_while_empty",)),
    Mutant("M445", "a Ray address without a port passes the check (Ray then retries for minutes)", 'orchestrator/run/preflight.py', 'if not host or not port:', 'if not host:', ("tests/orchestrator/run/test_preflight.py::test_an_address_without_a_port_is_refused_before_connecting",)),
    Mutant("M446", "a float written `1.` read as text", "orchestrator/spec/yaml_io.py", "[0-9]+(?:\\.[0-9]*)?", "[0-9]+(?:\\.[0-9]+)?", ("tests/orchestrator/spec/test_yaml_io.py::test_plain_scalars_read_as_the_yaml_1_2_core_schema_says",)),
    Mutant("M447", "a dataset name climbing out of profiles/ loads a packaged file as its profile", "orchestrator/spec/layers.py", "if not isinstance(dataset, str) or not dataset.isidentifier():", "if not isinstance(dataset, str):", ("tests/orchestrator/spec/test_spec_schema.py::test_a_dataset_profile_sits_between_the_defaults_and_the_spec",)),
    Mutant("M448", "the default methods lose naive_cued, claim (c)'s control", "orchestrator/spec/schema.py", '"naive", "llrt", "lpft", "cbft", "naive_cued"', '"naive", "llrt", "lpft", "cbft"', ("tests/orchestrator/spec/test_spec_schema.py::test_a_spec_of_only_a_name_plans_the_default_sweep_as_documented",)),
    Mutant("M449", "a relative data.root passed on relative, not absolute", "orchestrator/spec/locations.py", "return str(path.resolve())", "return str(path)", ("tests/orchestrator/spec/test_locations.py::test_a_relative_root_is_the_directory_under_the_working_directory_returned_absolute",)),
    Mutant("M450", "storage gcs:// refused", "orchestrator/spec/locations.py", '"file", "s3", "gs", "gcs", "hdfs"', '"file", "s3", "gs", "hdfs"', ("tests/orchestrator/spec/test_locations.py::test_storage_names_a_location_after_a_known_scheme",)),
    Mutant("M451", "the CLI console drops INFO (the story of a run)", "orchestrator/messages.py", "logger.setLevel(logging.INFO)", "logger.setLevel(logging.WARNING)", ("tests/orchestrator/test_messages.py::test_the_console_is_added_once_and_shows_the_story_of_a_run",)),
    Mutant("M452", "git is asked about the checkout's parent: a clone's runs record no revision", "orchestrator/provenance.py", "return git_revision(Path(__file__).resolve().parent)", "return git_revision(Path(__file__).resolve().parent.parent)", ("tests/orchestrator/test_provenance.py::test_without_a_submitted_revision_the_revision_is_that_of_the_checkout_the_package_runs_from",)),
    Mutant("M453", "a staged change recorded as a clean checkout", "orchestrator/provenance.py", '"--binary", "HEAD")', '"--binary")', ("tests/orchestrator/test_provenance.py::test_two_different_changes_to_a_binary_file_are_two_dirty_states",)),
    Mutant("M454", "a dataset that needs a root accepted with `root: null` (it fails only when tasks load it)", "orchestrator/spec/schema.py", 'if body.get("root") is None and isinstance(dataset, str)', 'if "root" not in body and isinstance(dataset, str)', ("tests/orchestrator/spec/test_spec.py",)),
    Mutant("M455", "a file that grew past the read limit while read is returned cut to the limit", "orchestrator/storage/layout.py", "+ 1 <= max_bytes:", "+ 1 < max_bytes:", ("tests/orchestrator/storage/test_layout.py::test_a_file_that_grew_past_the_limit_while_read_is_refused_at_the_limit_plus_one",)),
    Mutant("M456", "a sweep directory given as a bare name (`status sw`) is looked for under /", "orchestrator/storage/layout.py", 'Storage((parent or ".")', 'Storage((parent or "/")', ("tests/orchestrator/storage/test_layout.py::test_a_sweep_directory_given_relative_or_with_a_trailing_slash_is_that_directory",)),
    Mutant("M457", "an S3 lock judged stale is taken over by a create, not If-Match on the version judged", "orchestrator/storage/lock.py", "tag = cond.replace(path, data, version.tag)", "tag = cond.create(path, data)", ("tests/orchestrator/storage/test_lock.py::test_a_stale_lock_on_an_object_store_is_replaced_only_as_the_version_judged",)),
    Mutant("M458", "an S3 renewal that finds another driver's lock keeps running (two drivers on one sweep)", "orchestrator/storage/lock.py", 'if current is None or current.get("token") != me["token"]:', 'if current is None and current.get("token") != me["token"]:', ("tests/orchestrator/storage/test_lock.py::test_a_renewal_on_an_object_store_writes_a_deleted_lock_again_and_names_a_lock_that_replaced_it",)),
    Mutant("M459", "AccessDenied to a conditional write read as a failed condition (another driver's lock)", "orchestrator/storage/conditional.py", 'raise OSError(f"{code or status}: {exc}") from None', "return None", ("tests/orchestrator/storage/test_conditional.py::test_a_refusal_that_is_no_failed_condition_is_an_error_naming_it",)),
    Mutant("M460", "a temporary or foreign file in results/_markers/ is read as an index and deleted by the merge", "orchestrator/results/marker_index.py", "if n.startswith(_PREFIX) and n.endswith(_SUFFIX)]", "if n.startswith(_PREFIX) or n.endswith(_SUFFIX)]", ("tests/orchestrator/results/test_marker_index.py::test_only_files_named_like_an_index_are_read_and_merged",)),
    Mutant("M461", "index files named by local time: across a daylight-saving fall-back an older index wins", "orchestrator/results/marker_index.py", "time.gmtime(now // 10**9)", "time.localtime(now // 10**9)", ("tests/orchestrator/results/test_marker_index.py::test_index_files_are_named_by_utc_time_so_that_a_daylight_saving_hour_keeps_their_order",)),
    Mutant("M462", "read_plan(columns=...) ignores the columns and decodes the whole plan", "orchestrator/results/plan.py", "else _read_columns(data, columns)", "else read_parquet_bytes(data)", ("tests/orchestrator/results/test_plan.py::test_some_columns_of_a_stored_or_rebuilt_plan_are_those_columns_only",)),
    Mutant("M463", "without MMC_MAX_BUNDLE a bundle holds 16 short tasks, not the 8 README names", "orchestrator/run/schedule.py", "DEFAULT_MAX_BUNDLE = 8 ", "DEFAULT_MAX_BUNDLE = 16 ", ("tests/orchestrator/run/test_schedule_units.py::test_without_a_cap_a_bundle_holds_eight_short_tasks_and_an_explicit_cap_wins_over_mmc_max_bundle",)),
    Mutant("M464", "Tune retries a crashed trial (FAILURES.md: single-process tasks are not retried inside a run)", "orchestrator/run/schedule.py", "max_failures=0", "max_failures=1", ("tests/orchestrator/run/test_schedule_units.py::test_the_tune_run_never_retries_a_trial_and_lets_every_pending_task_through",)),
    Mutant("M465", "a local run joins a `ray start` cluster on the machine instead of starting a private Ray", "orchestrator/run/schedule.py", 'ray.init(address="local", num_cpus=num_cpus', 'ray.init(address=None, num_cpus=num_cpus', ("tests/orchestrator/run/test_schedule_units.py::test_ray_is_joined_at_the_given_address_else_at_ray_address_else_started_privately",)),
    Mutant("M466", "the run's trials in flight ignore the spec's max_concurrent", "orchestrator/run/sweep.py", "Concurrency(read, spec.max_concurrent, view=view)", "Concurrency(read, view=view)", ("tests/orchestrator/run/test_sweep_steps.py::test_the_run_follows_the_cluster_it_waited_for_at_most_max_concurrent_at_once",)),
    Mutant("M467", "the cluster is checked against what it has now, not what its autoscaler can grow it to", "orchestrator/run/sweep.py", "preflight.check_cluster(spec, layout, view.at_most(), kinds)", "preflight.check_cluster(spec, layout, view.now(), kinds)", ("tests/orchestrator/run/test_sweep_steps.py::test_the_cluster_is_checked_against_what_its_autoscaler_can_grow_it_to",)),
    Mutant("M468", "an interrupted run is not marked stopping: a second signal during the compaction does not end it at once", "orchestrator/run/sweep.py", "            STOPS.stopping = True", "            pass", ("tests/orchestrator/run/test_sweep_steps.py::test_a_task_tune_left_running_means_an_interrupt_and_a_second_stop_signal_then_ends_at_once",)),
    Mutant("M469", "every Ray Train worker trains as rank 0 (the global batch is not sharded by rank)", "orchestrator/run/distributed.py", "resume_log=log, rank=rank)", "resume_log=log, rank=0)", ("tests/orchestrator/run/test_distributed_units.py::test_a_worker_trains_on_its_rank_with_the_data_root_and_resumes_from_the_tasks_own_state",)),
    Mutant("M470", "dead nodes count in what the cluster has", "orchestrator/run/capacity.py", 'for n in ray.nodes() if n.get("Alive"))', 'for n in ray.nodes())', ("tests/orchestrator/run/test_capacity.py::test_only_alive_nodes_count_and_a_local_ray_is_read_without_asking_for_an_autoscaler",)),
]


def copy_tree(target: Path, working_tree: bool) -> None:
    """The committed tree (HEAD; reproducible) or, with `working_tree`, the working tree as git sees it
    (tracked and untracked files with their uncommitted changes, not the ignored ones) into `target`."""
    if not working_tree:
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def apply(root: Path, m: Mutant) -> str | None:
    """Apply `m` under `root`; returns the original text, or None when the line is not there."""
    path = root / m.path
    text = path.read_text()
    start = -1
    for _ in range(m.occurrence + 1):
        start = text.find(m.find, start + 1)
        if start < 0:
            return None
    path.write_text(text[:start] + m.replace + text[start + len(m.find):])
    return text


def pytest(root: Path, tests: tuple[str, ...], log: Path) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(root)
    start = time.monotonic()
    with open(log, "w") as f:
        try:
            rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider",
                                 "-p", "no:randomly", *tests], cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    return rc, time.monotonic() - start


def failing_test(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ")[0]
    return "?"


def run(mutants: list[Mutant], keep: bool, working_tree: bool = False) -> list[tuple[Mutant, str, str, float]]:
    root = Path(tempfile.mkdtemp(prefix="mmc-mutants-"))
    logs = root / "_logs"
    logs.mkdir()
    print(f"copy of {'the working tree' if working_tree else 'HEAD'}: {root}", flush=True)
    copy_tree(root, working_tree)
    results = []
    baselines: dict[tuple[str, ...], tuple[int, str]] = {}
    try:
        for m in mutants:
            if m.tests not in baselines:
                log = logs / f"baseline-{len(baselines)}.log"
                rc, _ = pytest(root, m.tests, log)
                baselines[m.tests] = (rc, failing_test(log) if rc else "")
            rc0, failed0 = baselines[m.tests]
            if rc0 != 0:
                results.append((m, "baseline fails", failed0, 0.0))
                print(f"{m.id}: baseline fails ({failed0})", flush=True)
                continue
            original = apply(root, m)
            if original is None:
                results.append((m, "stale", f"`{m.find}` not in {m.path}", 0.0))
                print(f"{m.id}: stale", flush=True)
                continue
            try:
                log = logs / f"{m.id}.log"
                rc, seconds = pytest(root, m.tests, log)
            finally:
                (root / m.path).write_text(original)
            verdict = "killed" if rc == 1 else "survived" if rc == 0 else "timeout" if rc == -1 else f"error (exit {rc})"
            results.append((m, verdict, failing_test(log) if rc else "", seconds))
            print(f"{m.id}: {verdict} in {seconds:.0f}s {results[-1][2]}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return results


def table(results) -> str:
    lines = ["| id | the bug | where | verdict | caught by | s |", "| --- | --- | --- | --- | --- | --- |"]
    for m, verdict, by, seconds in results:
        lines.append(f"| {m.id} | {m.bug} | `{m.path}` | **{verdict}** | `{by}` | {seconds:.0f} |")
    return "\n".join(lines)


def head_revision() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def write_doc(results, rev: str) -> None:
    """Replace the "Last result" of docs/MUTANTS.md: this run's rows, judged at `rev` (the revision the run
    copied when it started; HEAD may have moved on since), and the earlier rows of mutants not run this
    time (each row says the revision it was judged at)."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = DOC.read_text() if DOC.is_file() else ""
    marker = "## Last result"
    head, _, previous = text.partition(marker)
    rows = {line.split("|")[1].strip(): line for line in previous.splitlines()
            if line.startswith("| M") and line.count("|") >= 8}
    for m, verdict, by, seconds in results:
        rows[m.id] = f"| {m.id} | {m.bug} | `{m.path}` | **{verdict}** | `{by}` | {seconds:.0f} | {rev} {when} |"
    ordered = [rows[m.id] for m in MUTANTS if m.id in rows]
    verdicts = [line.split("|")[4].strip().strip("*") for line in ordered]
    summary = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    DOC.write_text(f"{head.rstrip()}\n\n{marker}\n\n`python scripts/mutants.py --write`, last at {rev} ({when}): "
                   f"{summary}.\n\n| id | the bug | where | verdict | caught by | s | judged at |\n"
                   "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(ordered) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--write", action="store_true", help=f"write the result into {DOC.relative_to(REPO)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and its logs")
    parser.add_argument("--working-tree", action="store_true", help="mutate the working tree with its uncommitted "
                        "changes (default: the committed HEAD)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.id}  {m.bug}\n      {m.path}: `{m.find}` -> `{m.replace}`\n      tests: {' '.join(m.tests)}")
        return 0
    rev = head_revision() + ("+working-tree" if args.working_tree else "")
    results = run(chosen, args.keep, args.working_tree)
    print(table(results))
    if args.write:
        write_doc(results, rev)
    return 0 if all(r[1] in ("killed", "baseline fails") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
