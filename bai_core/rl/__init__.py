"""RLHF from the merged actor: training (TRL), live monitoring, the stability detectors, their curves and plots."""
