"""Checks that teach: one ``check_...`` per exercise, for the lecture notebooks and the assignments.

Each check runs the student's answer on tiny seeded inputs (well under 10 s), rejects the known
wrong answers with a message that names the mistake (``CheckFailed``, an ``AssertionError``), and
prints one line starting with ``OK:`` when the answer is right. One module per notebook:

    common  the shared machinery (CheckFailed, _fail, _ok, _seeded, ...)
    a1      assignment A1 (Sparse VD from scratch): the layer exercises, re-exports a1_training
    a1_training  assignment A1: one training step on one batch, the outcome of the training run
    a2      assignment A2 (compress a trained model for real)
    nb01    notebook 01 (the log-uniform prior)
    nb02    notebook 02 (the KL approximation)
    nb03    notebook 03 (Sparse VD layers: the additive and local reparameterisations, compression)
    nb04    notebook 04 (what the weights look like)
    nb05    notebook 05 (random labels: the chance level, what a net without weights predicts)
    nb06    notebook 06 (the KL weight, the threshold, compression for real)
"""
from . import a1
from .a1 import *  # noqa: F401,F403
from . import a2
from .a2 import *  # noqa: F401,F403
from .nb01 import *  # noqa: F401,F403
from .nb02 import *  # noqa: F401,F403
from .nb03 import *  # noqa: F401,F403
from .nb04 import *  # noqa: F401,F403
from .nb05 import *  # noqa: F401,F403
from .nb06 import *  # noqa: F401,F403
from .common import CheckFailed

# One line per module: add "from .nbXX import *" and its __all__ here.
__all__ = sorted(set(a1.__all__) | set(a2.__all__) | set(nb01.__all__) | set(nb02.__all__)
                 | {"CheckFailed"}
                 | set(nb03.__all__)
                 | set(nb04.__all__)
                 | set(nb05.__all__)
                 | set(nb06.__all__))
