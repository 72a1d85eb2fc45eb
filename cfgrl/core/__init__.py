"""The shared learning core (torch): networks and their reference initialisation (`nets`), flow matching and the
guided sampler (`flow`), the Gaussian head (`gaussian`), the IQL critic (`iql`), the agent base with its one
gradient step (`agent`) and per-sample gradient norms (`gradients`). Imports nothing from the data, env or
pipeline layers; the methods (cfgrl/cfgrl.py, gc_cfgrl.py, hcfgrl.py, baselines/) are built from it."""
