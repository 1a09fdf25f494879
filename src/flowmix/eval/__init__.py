"""Evaluation: clustering metrics (pure functions) and the baselines flowmix is compared with."""
