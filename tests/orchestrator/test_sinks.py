"""`orchestrator/sinks.py` became `tables.py` (Parquet) and `tracking.py` (MLflow); their tests are
test_tables.py and test_tracking.py, and the synthetic sweep lives in synthetic.py.

This module only re-exports the synthetic sweep for test modules that still import it from here
(test_report.py, test_report_browser.py, test_stats.py); delete it once they import
`tests.orchestrator.synthetic`."""
from tests.orchestrator.synthetic import (ALPHAS, EVAL_SETS, METHODS, PAIRS, SEEDS, synthetic_sweep,  # noqa: F401
                                          write_sweep)
