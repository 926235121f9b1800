"""Model families. Each takes ``num_classes`` and ``input_shape`` from the data module.

To add a family: write ``models/<family>.py`` with a :class:`Classifier` subclass,
export it here, and add ``conf/model/<family>.yaml`` pointing ``_target_`` at it.
"""

from mnistlab.models.cnn import CNN
from mnistlab.models.common import ACTIVATIONS, INITS, Classifier
from mnistlab.models.dbsnet import DBSNet
from mnistlab.models.lenet import LeNet5
from mnistlab.models.mlp import MLP
from mnistlab.models.resmlp import ResMLP
from mnistlab.models.resnet import ResNet
from mnistlab.models.softmax import SoftmaxRegression

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "INITS",
    "MLP",
    "Classifier",
    "DBSNet",
    "LeNet5",
    "ResMLP",
    "ResNet",
    "SoftmaxRegression",
]
