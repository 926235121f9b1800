"""Hyperparameter search on Optuna (>= 4): a Hydra sweeper, persistent studies, pruning, a report.

``python train.py -m hparams_search=mlp_search`` runs a search. The sweeper
(``hydra_plugins.mnistlab_optuna_sweeper``) asks Optuna for each trial's values and
launches it as a Hydra job; the study lives in a storage (by default a journal file in the
sweep folder), so re-running the command continues it and several processes can share it.
Each job reports val/acc per epoch to its trial (:mod:`mnistlab.search.pruning`), and the
sweep report gains a search section (:mod:`mnistlab.report.search`).
"""
