#!/usr/bin/env bash
# Submit a sweep to a running Ray cluster as a Ray job and follow its logs.
#   cluster/submit.sh sweeps/cifar10_vgg13.yaml [--storage s3://bucket/mmc-runs]
# RAY_ADDRESS defaults to the local dashboard (http://127.0.0.1:8265); for a remote cluster use
# `ray dashboard cluster/cluster.yaml` (port-forward) or the KubeRay head service address.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:?usage: cluster/submit.sh SPEC.yaml [extra mmc-sweep run args]}
shift
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
exec ray job submit --address "$RAY_ADDRESS" --runtime-env cluster/runtime_env.yaml \
  -- python -m orchestrator run "$spec" "$@"
