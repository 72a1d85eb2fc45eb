"""Baselines with the same agent interface as cfgrl: AWR, the BC family and its goal-conditioned variants."""
