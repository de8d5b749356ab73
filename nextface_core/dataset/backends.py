"""Where tasks run: Ray (a local runtime started in-process, or a cluster) or local processes.

Both backends offer the same three calls (``submit``, ``wait``, ``close``); the driver in
:mod:`.runner` owns retries, so Ray's own task retries are off (``max_retries=0``) and a
worker that dies shows up as a failed attempt in both backends.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from typing import Any, Protocol

from ..errors import BackendUnavailableError, UsageError
from ..install import extra_command
from .task import TaskOutcome, TaskSpec, run_task

log = logging.getLogger(__name__)

RAY_HINT = f"{extra_command('ray')}, or run the same tasks in local processes with --no-ray"
#: object store of the in-process runtime: results are small dicts, inputs are paths
OBJECT_STORE_BYTES = 100 * 1024 * 1024


class WorkerLost(RuntimeError):
    """The process running a task died (killed, out of memory, node lost)."""


class Backend(Protocol):
    workers: int

    def submit(self, spec: TaskSpec) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TaskOutcome | BaseException]]: ...

    def cancel(self, handles: list[Any]) -> None: ...

    def close(self) -> None: ...


def import_ray() -> Any:
    """The ``ray`` module, or BackendUnavailableError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("Ray is not installed", RAY_HINT) from None
    return ray


def gpus_per_task(device: str, cluster_gpus: float) -> int:
    """GPUs each task asks Ray for: 1 when the fit runs on CUDA (``run.device`` cuda/cuda:N,
    or auto on a cluster that has GPUs), else 0. A Ray worker sees only the GPU Ray gave it,
    so "auto" resolves to that GPU inside the task, and to the CPU in a task given none."""
    if device.startswith("cuda"):
        if cluster_gpus <= 0:
            raise UsageError(f"run.device = {device!r} but the Ray cluster has no GPU", 'use --device cpu or "auto", or join a cluster with GPUs')
        return 1
    return 1 if device == "auto" and cluster_gpus > 0 else 0


class RayBackend:
    """Tasks as Ray tasks (one CPU each, plus a GPU when the fit runs on CUDA).

    Without ``address`` a local runtime is started in this process (no dashboard, small
    object store, ``workers`` CPUs) unless Ray is already initialised here; with
    ``address`` it joins that cluster. ``device``: the config's ``run.device``.
    """

    def __init__(self, workers: int | None, address: str | None, device: str) -> None:
        ray = self.ray = import_ray()
        # Ray's loggers stop at "ray", which has no handler: its warnings ("Token authentication
        # is enabled ...") reached stderr bare through logging's last resort. Through the root
        # handler of nextface_core.logs they are shown with -v only, as "warning: ..." lines.
        logging.getLogger("ray").propagate = True
        self._owned = False
        if not ray.is_initialized():
            common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, "logging_level": logging.WARNING}
            if address:
                try:
                    ray.init(address=address, **common)
                except ConnectionError as exc:
                    raise BackendUnavailableError(
                        f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}",
                        "check the address (ray status on the head node); a cluster with token authentication "
                        "also needs RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token)",
                    ) from None
            else:
                # "local": always a fresh runtime, never a cluster some `ray start` left behind
                ray.init(address="local", num_cpus=workers or multiprocessing.cpu_count(),
                         object_store_memory=OBJECT_STORE_BYTES, **common)
            self._owned = True
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0.0))
        try:
            self.num_gpus = gpus_per_task(device, gpus)
        except UsageError:
            self.close()
            raise
        capacity = gpus if self.num_gpus else float(resources.get("CPU", 1.0))
        self.workers = max(1, int(workers or capacity))
        self._task = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_retries=0)(run_task)

    def submit(self, spec: TaskSpec) -> Any:
        return self._task.remote(spec)

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TaskOutcome | BaseException]]:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        done = []
        for ref in ready:
            try:
                done.append((ref, self.ray.get(ref)))
            except self.ray.exceptions.RayTaskError as exc:  # the task raised: its own exception
                done.append((ref, exc.as_instanceof_cause()))
            except self.ray.exceptions.RayError as exc:  # worker or node died
                done.append((ref, WorkerLost(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")))
        return done

    def cancel(self, handles: list[Any]) -> None:
        """Stop unfinished tasks (their workers are killed: a task's files are written
        atomically and its records.json last, so a cancelled task is simply redone)."""
        for ref in handles:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned = False


class ProcessBackend:
    """Tasks in local worker processes (``--no-ray``); a pool broken by a dead worker is
    replaced, and its unfinished tasks come back as failed attempts."""

    def __init__(self, workers: int | None) -> None:
        self.workers = max(1, workers or multiprocessing.cpu_count())
        self._pool: cf.ProcessPoolExecutor | None = None
        self._pools: dict[cf.Future, cf.ProcessPoolExecutor] = {}

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def submit(self, spec: TaskSpec) -> Any:
        pool = self._executor()
        future = pool.submit(run_task, spec)
        self._pools[future] = pool
        return future

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TaskOutcome | BaseException]]:
        ready, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        done = []
        for future in ready:
            exc = future.exception()
            pool = self._pools.pop(future)
            if isinstance(exc, cf.process.BrokenProcessPool):
                exc = WorkerLost(f"a worker process died ({exc})")
                if pool is self._pool:  # the next submit starts a fresh pool
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
            done.append((future, exc if exc is not None else future.result()))
        return done

    def cancel(self, handles: list[Any]) -> None:
        """Cancel tasks not yet started; running ones finish (a process cannot be stopped
        safely) and their results stay on disk for the next run to pick up."""
        for future in handles:
            future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
