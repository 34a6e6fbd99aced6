"""Benchmarks: partnerflow's hot paths measured beside the engines a Python team would pick instead.

Run with ``python -m benchmarks run [--quick] [--json PATH]`` after
``pip install -e '.[bench]'``. See ``benchmarks/README.md``.
"""
