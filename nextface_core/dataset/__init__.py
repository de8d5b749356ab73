"""Dataset-scale fitting: one task per image (or per identity group) on Ray or local processes.

From Python::

    from nextface_core.config import load_config
    from nextface_core.dataset import fit_dataset

    report = fit_dataset("photos/", "s3://bucket/fits", load_config(), workers=8)
    print("\\n".join(report.lines()))

See :mod:`.runner` for the output layout, :mod:`.manifest` for the input and the manifest,
:mod:`.task` for what one task does and :mod:`.backends` for Ray and local processes.
"""

from .backends import ProcessBackend, RayBackend, WorkerLost, gpus_per_task, import_ray
from .manifest import DONE, FAILED, PENDING, ImageRecord, assign_tasks, collect_images, read_manifest, write_manifest
from .runner import DatasetReport, fit_dataset, metric_distribution
from .storage import Location
from .task import TaskOutcome, TaskSpec, run_task

__all__ = [
    "DONE", "FAILED", "PENDING", "DatasetReport", "ImageRecord", "Location", "ProcessBackend", "RayBackend",
    "TaskOutcome", "TaskSpec", "WorkerLost", "assign_tasks", "gpus_per_task", "collect_images", "fit_dataset", "import_ray",
    "metric_distribution", "read_manifest", "run_task", "write_manifest",
]
