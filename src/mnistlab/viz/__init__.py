"""Tables and figures computed from test-set predictions: plain functions, no Lightning.

The callbacks in :mod:`mnistlab.callbacks` call these at the end of a test run;
``eval.py`` and notebooks can call them directly.
"""
