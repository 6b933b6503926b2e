"""What tests and benchmarks bring to a sweep: runners selected by import path (`runners`)."""
