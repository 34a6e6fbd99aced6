"""The long fuzz run for `python -m benchmarks chaos`: the bad-input tests with many more examples.

Runs ``tests/reliability/test_bad_input.py`` in this process with
``PARTNERFLOW_FUZZ_EXAMPLES`` raised (schemathesis over every API operation,
its coverage phase included, and hypothesis over every HTML form), and
returns how many requests were sent and how many were answered with a 5xx.
"""
from __future__ import annotations

import os
from pathlib import Path


def run_fuzz(examples: int = 200) -> dict:
    import pytest

    os.environ["PARTNERFLOW_FUZZ_EXAMPLES"] = str(examples)
    here = Path(__file__).resolve().parent
    code = pytest.main([str(here / "test_bad_input.py"), "-q", "-p", "no:cacheprovider",
                        "-W", "ignore::DeprecationWarning"])
    from tests.reliability.test_bad_input import FUZZ_STATS

    return {"examples_per_operation": examples, "cases": FUZZ_STATS["cases"],
            "server_errors": FUZZ_STATS["server_errors"], "server_error_requests": FUZZ_STATS["server_error_requests"],
            "pytest_exit_code": int(code)}
