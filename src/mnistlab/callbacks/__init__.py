"""Lightning callbacks: what every run records and draws."""

from mnistlab.callbacks.calibration import CalibrationArtifact
from mnistlab.callbacks.confusion import ConfusionMatrixArtifact
from mnistlab.callbacks.curves import TrainingCurves
from mnistlab.callbacks.data_overview import DataOverview
from mnistlab.callbacks.evaluation import ArtifactWriter, Evaluation, Predictions, attach_writers
from mnistlab.callbacks.galleries import MisclassifiedGallery, PredictionCards
from mnistlab.callbacks.gradcam import GradCAMArtifact
from mnistlab.callbacks.history import EpochHistory
from mnistlab.callbacks.per_class import PerClassArtifact
from mnistlab.callbacks.roc import ROCArtifact

__all__ = [
    "ArtifactWriter",
    "CalibrationArtifact",
    "ConfusionMatrixArtifact",
    "DataOverview",
    "EpochHistory",
    "GradCAMArtifact",
    "MisclassifiedGallery",
    "PerClassArtifact",
    "PredictionCards",
    "ROCArtifact",
    "Evaluation",
    "Predictions",
    "TrainingCurves",
    "attach_writers",
]
