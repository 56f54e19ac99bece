"""``Client`` methods for training jobs, their runs, batch scoring and the cluster's jobs.

Reading runs needs only storage; submitting (Ray's job client) and the checks that need
Ray Data or torch import them in the method, so building a ``Client`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tandem.batch import BatchPredictSpec, BatchResult, read_summary
from tandem.errors import NotFoundError
from tandem.models import user_package
from tandem.registry import Manifest, Registry
from tandem.sdk.base import ClientBase
from tandem.sdk.entrypoints import batch_entrypoint, train_entrypoint
from tandem.sdk.handles import Job
from tandem.sdk.types import JobSummary, SpecSource
from tandem.specs import Precision, TrainJobSpec, VersionRef, load
from tandem.train import RunRecord, RunSummary, list_runs, load_run, write_curves

if TYPE_CHECKING:
    from tandem.train import Reproduction


class TrainingCalls(ClientBase):
    # --- training -------------------------------------------------------------

    def submit(self, spec: TrainJobSpec | SpecSource, resume: bool = False) -> Job[Manifest]:
        """Check spec and data here, then submit the training job; returns at once.

        The job's result (``wait()``) is the registered version's manifest.
        """
        from tandem.cluster import require_shared
        from tandem.cluster import submit as submit_job
        from tandem.train import preflight as train_preflight
        from tandem.train import with_resolved_paths

        checked = with_resolved_paths(load(TrainJobSpec, spec), self.settings)
        train_preflight(checked)
        assert checked.storage is not None
        require_shared(self.settings, checked.storage)
        # A factory from the user's own package travels to the job like `ray job submit
        # --runtime-env-json '{"py_modules": [...]}'` would send it.
        package = user_package(checked.model.factory)
        modules = [str(package[1])] if package and package[1].is_dir() else None
        handle = submit_job(self.settings, train_entrypoint(checked, resume), py_modules=modules)
        registry = Registry(checked.storage)
        return Job(handle, lambda: _registered_by(registry, checked.name, handle.submission_id))

    def train(
        self, spec: TrainJobSpec | SpecSource, wait: bool = True, resume: bool = False
    ) -> Job[Manifest]:
        """``submit``, then (``wait=True``) block until the version is registered."""
        job = self.submit(spec, resume=resume)
        if wait:
            job.wait()
        return job

    def jobs(self) -> list[JobSummary]:
        """Jobs submitted to the cluster, oldest first."""
        from tandem.cluster import list_jobs

        return [
            JobSummary(info.submission_id, info.status, info.entrypoint, info.message)
            for info in list_jobs(self.settings)
        ]

    def job(self, submission_id: str) -> Job[None]:
        """A handle on a job submitted earlier (``NotFoundError`` if the cluster has none)."""
        from tandem.cluster import attach as attach_job

        return Job(attach_job(self.settings, submission_id), lambda: None)

    def runs(self, name: str | None = None) -> list[RunSummary]:
        """Training runs in the default storage (of job ``name`` only), newest last.

        Reads run storage only: no cluster needed."""
        return list_runs(self.settings.storage_uri, name)

    def run(self, run_id: str) -> RunRecord:
        """One run's status, resolved spec and per-epoch metrics (``NotFoundError`` names
        the known runs)."""
        return load_run(self.settings.storage_uri, run_id)

    def compare_runs(self, run_ids: list[str], plot: str | Path | None = None) -> list[RunRecord]:
        """The runs' records, in the order given; ``plot``: also write their training
        curves there as a self-contained HTML file."""
        records = [self.run(run_id) for run_id in run_ids]
        if plot is not None:
            write_curves(records, plot)
        return records

    def reproduce(self, name: str, version: VersionRef, wait: bool = True) -> Job[Reproduction]:
        """Train ``version`` again from the spec its lineage kept (same data, checked by
        content fingerprint, same seed); the new version registers under ``name``.

        The job's result (``wait()``) compares the new version with the original: weights
        (identical, or the largest difference) and metrics.
        """
        from tandem.cluster import attach as attach_job
        from tandem.train import Reproduction, compare_versions, reproduction_spec, storage_uri

        original = self._registry().manifest(name, version)
        spec = reproduction_spec(original)
        training = self.train(spec, wait=False)
        registry = Registry(storage_uri(spec, self.settings))

        def compared() -> Reproduction:
            manifest = training.wait()
            comparison = compare_versions(registry, name, original.version, manifest.version)
            return Reproduction(original, manifest, comparison)

        job = Job(attach_job(self.settings, training.submission_id), compared)
        if wait:
            job.wait()
        return job

    # --- batch ----------------------------------------------------------------

    def batch_predict(
        self,
        model: str,
        input_uri: str,
        output_uri: str,
        version: VersionRef = "latest",
        id_column: str | None = None,
        wait: bool = True,
        gpus_per_actor: float = 0.0,
        precision: Precision = "fp32",
    ) -> Job[BatchResult]:
        """Score Parquet at ``input_uri`` as a job in the batch pool; Parquet to ``output_uri``.

        ``gpus_per_actor`` > 0 scores on the batch pool's GPUs, in ``precision`` (fp32, or
        fp16 / bf16 on a GPU). The job's result (``wait()``) says rows and rows/s. For batch
        size and actor pool width, pass a whole ``BatchPredictSpec`` to ``submit_batch``.
        """
        fields = {"model": model, "version": version, "input": input_uri, "output": output_uri}
        spec = load(
            BatchPredictSpec,
            fields
            | {"id_column": id_column, "gpus_per_actor": gpus_per_actor, "precision": precision},
        )
        return self.submit_batch(spec, wait=wait)

    def submit_batch(
        self, spec: BatchPredictSpec | SpecSource, wait: bool = False
    ) -> Job[BatchResult]:
        """Check a batch spec here (model, version, input columns), then submit it."""
        from tandem.batch import preflight
        from tandem.cluster import require_shared
        from tandem.cluster import submit as submit_job

        checked = preflight(load(BatchPredictSpec, spec), self.settings).spec
        assert checked.storage is not None
        require_shared(self.settings, checked.storage)
        handle = submit_job(self.settings, batch_entrypoint(checked))
        job = Job(handle, lambda: read_summary(checked.output))
        if wait:
            job.wait()
        return job


def _registered_by(registry: Registry, name: str, submission_id: str) -> Manifest:
    """The version a training job registered, found by the job id in its lineage."""
    for version in reversed(registry.versions(name)):
        manifest = registry.manifest(name, version)
        if manifest.lineage.submission_id == submission_id:
            return manifest
    raise NotFoundError(
        f"job {submission_id} succeeded but registered no version of {name!r} in {registry.uri}"
    )
