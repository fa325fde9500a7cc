"""2D/3D pose extraction from raw videos with MediaPipe Pose, into the skeleton annotation pickle.

From the bottom up:

* :mod:`~lightact.data.skeleton.pose.mediapipe`: the optional MediaPipe import, its quieting, its
  Pose graphs on a chosen number of threads, and whether it is installed
  (``pip install 'lightact[pose]'``);
* :mod:`~lightact.data.skeleton.pose.tracking`: person boxes, the tracker that keeps identities
  across frames, and the removal of too-short appearances;
* :mod:`~lightact.data.skeleton.pose.extractor`: :class:`PoseExtractor` and :func:`extract_pose`,
  the poses of one video (how several people are found, and what the arrays hold, is described there);
* :mod:`~lightact.data.skeleton.pose.parts`: the resumable store, one part file per finished video;
* :mod:`~lightact.data.skeleton.pose.runner`: :func:`run_pose`, many videos in worker processes.

``docs/pose.md`` has measurements and the known failure cases.
"""

from lightact.data.skeleton.pose.extractor import (
    LAYOUT,
    NUM_LANDMARKS,
    PoseExtractor,
    PoseResult,
    extract_pose,
)
from lightact.data.skeleton.pose.mediapipe import MissingDependencyError, mediapipe_available
from lightact.data.skeleton.pose.parts import part_path
from lightact.data.skeleton.pose.runner import collect_videos, run_pose

__all__ = [
    "LAYOUT",
    "NUM_LANDMARKS",
    "MissingDependencyError",
    "PoseExtractor",
    "PoseResult",
    "collect_videos",
    "extract_pose",
    "mediapipe_available",
    "part_path",
    "run_pose",
]
