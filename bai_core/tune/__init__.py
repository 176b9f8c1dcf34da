"""Learned merge weights: `bai tune` searches (w, alpha) for the best start, with cached trials (trial.py) and an
Optuna study (study.py) configured by the pipeline's `tune:` section (config.py)."""
