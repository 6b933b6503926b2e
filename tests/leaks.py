"""Credentials where a run meets them, for tests/test_security.py::test_no_sink_of_a_run_holds_a_credential:
a model of your own whose build fails with a credential in its error (`tests.leaks:build` in a spec), and
failures of the driver's side jobs (compaction, the first batch of MLflow runs, the report's upload to
MLflow, closing the MLflow parent run) whose exceptions name URIs with credentials, as storage and
tracking clients do."""
SECRET = "LEAKcheck-2b7e41d09a"
URIS = (f"s3://AKIAFAKE:{SECRET}@bucket/runs", f"http://alice:{SECRET}@mlflow.example:5000/api/2.0",
        f"sqlite:////tmp/mlflow.db?password={SECRET}", f"https://store.example/x?token={SECRET}")


def build(num_classes: int, in_channels: int, width: int | None = None):
    raise RuntimeError(f"cannot fetch the initial weights from {URIS[0]}/init.safetensors")


def install_driver_faults() -> None:
    """Make the driver's side jobs fail with credentials in their messages (call before the CLI)."""
    from orchestrator.results import compact
    from orchestrator.run import tracking, tracking_sql

    import warnings

    def failing(uri: str):
        def fail(*args, **kwargs):
            warnings.warn(f"retrying {uri}", RuntimeWarning, stacklevel=2)
            raise OSError(f"request to {uri} failed: 403 Forbidden")
        return fail

    upload = tracking.MlflowTracker.log_artifacts

    def upload_fails(self, artifacts):
        artifacts = list(artifacts)
        if artifacts:
            raise OSError(f"upload of {len(artifacts)} files to {URIS[1]} failed: 403 Forbidden")
        upload(self, artifacts)

    compact.compact = failing(URIS[0])
    tracking_sql.SqlRunWriter.write = failing(URIS[2])
    tracking.MlflowTracker.log_artifacts = upload_fails
    tracking.MlflowTracker.end_parent = failing(URIS[3])
