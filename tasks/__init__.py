"""Thin Prefect tasks over `bai_core` (cache policy, retries, artifacts, result storage).

Empty until the pipeline lands: the merge it will wrap is `bai_core.merge`.
"""
