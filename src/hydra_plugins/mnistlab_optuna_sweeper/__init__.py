"""mnistlab's Optuna sweeper for Hydra: ``override /hydra/sweeper: mnistlab_optuna``."""
