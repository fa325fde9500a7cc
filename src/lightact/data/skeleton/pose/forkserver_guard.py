"""Imported only inside the forkserver of the pose worker pool (``set_forkserver_preload``): the
forkserver then ends when the process that started it does, even by ``kill -9``, instead of living
on with its workers. Importing it anywhere else would tie that process to its own parent."""

from lightact.utils import die_with_parent

die_with_parent()
