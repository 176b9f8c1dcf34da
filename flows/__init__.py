"""Prefect flows that compose the tasks in `tasks/` (pipeline, sweep, comparison).

Empty until the pipeline lands.
"""
