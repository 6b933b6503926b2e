"""Loaded by every Python process started with `tests/hooks` on PYTHONPATH (a sweep's driver, its Ray
workers). Inert unless MMC_TEST_HOOKS=1: then `mmc_test_hooks.install` runs on `orchestrator.run.work`
right after that module is imported, in whichever process imports it."""
import os
import sys

if os.environ.get("MMC_TEST_HOOKS") == "1":
    import importlib.abc
    import importlib.util

    class _AfterImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "orchestrator.run.work":
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_then_install(module):
                exec_module(module)
                import mmc_test_hooks

                mmc_test_hooks.install(module)

            spec.loader.exec_module = exec_then_install
            return spec

    sys.meta_path.insert(0, _AfterImport())
