"""Imported only inside the forkserver of the pose worker pool (``set_forkserver_preload``), first:
the forkserver then ends when the process that started it does, even by ``kill -9``, instead of
living on with its workers, and records its pid for them (``runner._worker_init``: each worker
ends with the forkserver). Importing it anywhere else would tie that process to its parent."""

import os

from lightact.utils import die_with_parent

die_with_parent(int(os.environ.get("LIGHTACT_POSE_PARENT", os.getppid())))
os.environ["LIGHTACT_POSE_PARENT"] = str(os.getpid())  # the workers' parent: this forkserver
