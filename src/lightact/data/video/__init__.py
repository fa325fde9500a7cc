"""Video input: streamed decoding with PyAV (the ``video`` extra). The package's face is the
reader's public names (:data:`lightact.data.video.reader.__all__`)."""

from lightact.data.video.reader import *  # noqa: F403
from lightact.data.video.reader import __all__  # noqa: F401
