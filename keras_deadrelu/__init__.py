"""keras-deadrelu: find, show and fix dying ReLUs while a Keras model trains."""

from keras_deadrelu import fixes, layers
from keras_deadrelu.dead_fractions import dead_fractions
from keras_deadrelu.layers import ELU, SELU, LeakyReLU, PReLU, SELUDense
from keras_deadrelu.monitor import DeadNeuronMonitor
from keras_deadrelu.sites import Site, find_sites
from keras_deadrelu.threshold_alerts import DeadNeuronWarning

__version__ = "0.1.0"

__all__ = [
    "DeadNeuronMonitor",
    "DeadNeuronWarning",
    "Site",
    "dead_fractions",
    "find_sites",
    "fixes",
    "ELU",
    "SELU",
    "LeakyReLU",
    "PReLU",
    "SELUDense",
    "__version__",
    "layers",
]
