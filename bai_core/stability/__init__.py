"""Stability analysis of RL runs: the detectors, their statistics, the curves they read from any tool's log, the
simulated runs that measure them, and their plots. Pure: numpy and matplotlib, no torch, no TRL, no Prefect."""
