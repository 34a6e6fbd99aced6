"""Lifecycles: one module per lifecycle, each defining `WORKFLOW` (and maybe `SCHEDULES`).

The registry (`engine.registry.default_registry`) discovers every module here.
"""
