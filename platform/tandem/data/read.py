"""The one Parquet reader: Ray Data over a checked source, in a pool, never on a serve node.

Training ingest (``tandem.data.ingest``) and batch scoring (``tandem.batch``) both read
through ``read_parquet``, and the Ray Data context switch that keeps their pipelines off
the serve nodes lives beside it.
"""

from __future__ import annotations

import ray.data
from ray.data import Dataset

from tandem.cluster import OFF_SERVE, pool_resources
from tandem.data.source import ParquetSource
from tandem.specs import Pool


def read_parquet(
    source: ParquetSource, columns: list[str], pool: Pool, blocks: int | None = None
) -> Dataset:
    """``columns`` of every file of ``source``, read by tasks that ask for ``pool``, in
    ``blocks`` read blocks (``None``: as many as Ray Data picks); no task of this
    process's Ray Data pipelines runs on a serve node from then on."""
    keep_data_off_serve()
    return ray.data.read_parquet(
        list(source.files),
        filesystem=source.arrow_fs,
        columns=columns,
        resources=pool_resources(pool),
        override_num_blocks=blocks,
    )


def keep_data_off_serve() -> None:
    """Keep every task and actor of this process's Ray Data pipelines off the serve nodes.

    Ray Data starts some tasks without the resources a read asks for. Its V2 Parquet
    source lists files in such a task, so the V1 source is used (it reads footers in the
    driver and runs every read task with the read's resources). V1's Parquet sampling
    still runs SPREAD-scheduled, and each training or batch job started a worker process
    on the serve node (found by listing the serve node's tasks during the isolation
    benchmark: one ``_fetch_parquet_file_info`` per job, and two worker start-ups, each a
    second or more of the serve core at the request path's priority): the context's label
    selector reaches every task and actor a Dataset launches."""
    context = ray.data.DataContext.get_current()
    context.use_datasource_v2 = False
    context.execution_options.label_selector = dict(OFF_SERVE)
