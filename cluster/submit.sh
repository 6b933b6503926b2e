#!/usr/bin/env bash
# Submit a sweep to a running Ray cluster as a Ray job and follow its logs.
#   cluster/submit.sh sweeps/cifar10_vgg13.yaml [--storage s3://bucket/mmc-runs]
# RAY_ADDRESS defaults to the local dashboard (http://127.0.0.1:8265); for a remote cluster use
# `ray dashboard cluster/cluster.yaml` (port-forward) or the KubeRay head service address.
#
# Every node must reach the sweep's `storage`, its `data.root` and its MLflow store: tasks run on
# any node, write their outputs under `storage` and read the dataset under `data.root` there. Use
# s3:// or gs:// storage (or an NFS path mounted on every node), a dataset on NFS or at the same path
# on every node, and `--tracking-uri` of an MLflow server. On a cluster of several nodes,
# `mmc-sweep run` checks this before any task runs and stops with exit 2 otherwise (a cluster that scales from
# zero, its head alone then: a warning names local paths, as nodes started later cannot be looked at), e.g.:
#   error: `storage` must be reachable from every node of the Ray cluster, but the sweep directory
#   /home/ubuntu/mmc-runs/cifar10_vgg13, which the driver writes on its node 10.0.1.5 (host ip-10-0-1-5,
#   node id 8d25e1264b50), is not visible from:
#     - node 10.0.2.17 (host ip-10-0-2-17, node id 18c8de1c3612): the directory does not exist there
#   Tasks run on any node and write their checkpoints and results under `storage`; the tasks that
#   follow and the driver read them back on their own nodes, so every node must see the same directory.
#   Fix: give `storage` an object store (`storage: s3://BUCKET/mmc-runs` or `gs://BUCKET/mmc-runs`, or
#   `--storage s3://BUCKET/mmc-runs`), or a directory mounted at the same path on every node (an NFS
#   export such as /mnt/nfs/mmc-runs).
#
# Provenance: the job's working directory is a copy of this checkout without `.git`, so the revision is
# taken here and handed to the job as MMC_SOURCE_REVISION (`<commit>`, `+dirty.<sha256 of git diff HEAD>`
# with uncommitted changes; orchestrator/provenance.py): the `tasks` table, the report and MLflow show it. The
# diff itself travels in the job's copy as .mmc-source.diff (removed here when the script ends), and the sweep
# directory keeps it, redacted, as provenance/<revision>.diff.
# The job is named `mmc-<spec file name>-<UTC time>-<6 random hex digits>` (MMC_SUBMISSION_ID overrides it;
# Ray refuses a submission id it has seen), and its metadata (the dashboard's job page, `ray job list`) holds
# the spec, the arguments and the revision.
#
# Credentials: none in the arguments (a URI's `KEY:SECRET@`, `?token=`): Ray stores a job's command line and
# prints it in the job's logs, so the script refuses them (exit 2) before submitting; give them to the nodes.
#
# Exit status: the sweep's own (`mmc-sweep run`: 0 done, 1 tasks failed, 2 bad input, 130 interrupted; 137 where
# Ray killed a stopped driver after RAY_JOB_STOP_WAIT_TIME_S, which runtime_env.yaml sets to 60 s),
# read from the job once its logs end; `ray job submit` alone says 1 for any failure and 0 for a stopped
# job. Ctrl-C here stops following the logs, not the job: `ray job stop <id>` stops it (as Ctrl-C stops
# a local run: finished tasks are kept), and resubmitting the same spec resumes it.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:?usage: cluster/submit.sh SPEC.yaml [extra mmc-sweep run args]}
shift
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
python=${PYTHON:-python3}
"$python" -m orchestrator.run.job_submission check-arguments "$spec" "$@"   # no credential into Ray's job table
# the revision, and with uncommitted changes their diff, shipped with the checkout for the sweep directory
revision=$("$python" -m orchestrator.provenance --diff-file .mmc-source.diff)
trap 'rm -f .mmc-source.diff' EXIT
name=$(basename "$spec" .yaml)
submission_id=${MMC_SUBMISSION_ID:-mmc-$name-$(date -u +%Y%m%d-%H%M%S)-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
metadata=$("$python" -c 'import json, sys
print(json.dumps({"job_name": f"mmc-sweep {sys.argv[1]}", "mmc.spec": sys.argv[2], "mmc.arguments": " ".join(sys.argv[4:]),
                  "mmc.source_revision": sys.argv[3] or "unknown"}))' "$name" "$spec" "$revision" "$@")
status=0
ray job submit --address "$RAY_ADDRESS" --runtime-env cluster/runtime_env.yaml \
  --submission-id "$submission_id" --metadata-json "$metadata" \
  -- env MMC_SOURCE_REVISION="$revision" python -m orchestrator run "$spec" "$@" || status=$?
# The driver's exit status, once the job has ended (none while it runs, e.g. after Ctrl-C here): 128 + N for a
# driver killed by signal N, 130 for a stopped job that recorded none (orchestrator/run/job_submission.py).
code=$("$python" -m orchestrator.run.job_submission exit-status "$RAY_ADDRESS" "$submission_id" 2>/dev/null) || code=""
exit "${code:-$status}"
