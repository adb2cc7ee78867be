"""``numbanet.callbacks``: the training-loop hooks (defined in ``numbanet.models.callbacks``)."""
from .models.callbacks import Callback, EarlyStopping, EpochProgressBar, History, ModelCheckpoint, TerminateOnNaN  # noqa: F401
from .models.callbacks import CSVLogger, LearningRateScheduler, ReduceLROnPlateau  # noqa: F401
from .models.health import GradientHealth  # noqa: F401,E402
