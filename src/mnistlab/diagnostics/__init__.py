"""Diagnostics callbacks: what happens inside a network while it trains.

Each is a Lightning callback writing CSV/JSON and a PNG into
``<run dir>/artifacts/diagnostics/``; they are off by default and switched on by
the studies that need them (``conf/callbacks/<name>.yaml``, ``callbacks=diagnostics``).
Each measurement is also a plain function, so it can be checked on a hand-built model.
"""

from mnistlab.diagnostics.activations import ActivationStats, activation_statistics
from mnistlab.diagnostics.grad_norms import GradientNorms, layer_grad_norms
from mnistlab.diagnostics.latency import InferenceLatency, measure_latency
from mnistlab.diagnostics.neuron_grads import NeuronGradientTrace, unit_grad_norms
from mnistlab.diagnostics.tsne import FeatureTSNE, embed_features
from mnistlab.diagnostics.weights import WeightHistograms, weight_statistics

__all__ = [
    "ActivationStats",
    "FeatureTSNE",
    "GradientNorms",
    "InferenceLatency",
    "NeuronGradientTrace",
    "WeightHistograms",
    "activation_statistics",
    "embed_features",
    "layer_grad_norms",
    "measure_latency",
    "unit_grad_norms",
    "weight_statistics",
]
