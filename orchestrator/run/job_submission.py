"""What `cluster/submit.sh` asks before and after it submits a sweep as a Ray job:

    python -m orchestrator.run.job_submission check-arguments ARG...    exit 2 where an argument holds a credential
    python -m orchestrator.run.job_submission exit-status ADDRESS ID    the sweep's exit status, once the job ended

A Ray job keeps its entrypoint (the command line) and its metadata in the cluster's job table, and prints the
entrypoint in its logs (`ray job logs`, the dashboard): a credential in a URI among the arguments would be
stored and shown there, out of reach of `redact`. It is refused before anything is submitted.

A job's driver exit code is what `mmc-sweep run` returned (0 done, 1 tasks failed, 2 bad input, 130
interrupted), or -N where signal N killed it (Ray SIGKILLs a stopped driver that outlives its grace period):
128 + N, as a shell says. A job stopped with `ray job stop` may end with no exit code recorded: it was
interrupted, 130.
"""
from __future__ import annotations

import sys

from orchestrator.uris import redact

EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130


def credential_problem(arguments: list[str]) -> str | None:
    """Why `arguments` cannot go into a Ray job's command line (one of them holds a credential), else None."""
    held = [shown for a in arguments if (shown := redact(a)) != a]
    if not held:
        return None
    return (f"{', '.join(held)}: a credential in the arguments of a Ray job is stored in the cluster's job table "
            "and printed in its logs (`ray job logs`, the dashboard); give it to every node instead (an instance "
            "role or service account, ~/.aws/credentials, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the "
            "nodes' environment) and the URI without it, e.g. --storage s3://BUCKET/mmc-runs")


def exit_status(status: str, driver_exit_code: int | None) -> int | None:
    """The sweep's exit status from a job's status and driver exit code; None while it has not ended."""
    if driver_exit_code is not None:
        return 128 - driver_exit_code if driver_exit_code < 0 else driver_exit_code
    if status == "STOPPED":
        return EXIT_INTERRUPTED
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["check-arguments"]:
        problem = credential_problem(argv[1:])
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0
    if argv[:1] == ["exit-status"] and len(argv) == 3:
        from ray.job_submission import JobSubmissionClient

        info = JobSubmissionClient(argv[1]).get_job_info(argv[2])
        code = exit_status(str(getattr(info.status, "value", info.status)), info.driver_exit_code)
        print("" if code is None else code)
        return 0
    print("usage: python -m orchestrator.run.job_submission check-arguments ARG... | exit-status ADDRESS ID",
          file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
