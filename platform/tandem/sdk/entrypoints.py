"""Command lines of the jobs the SDK submits (pure: specs in, shell strings out)."""

from __future__ import annotations

import shlex

from tandem.batch import BatchPredictSpec
from tandem.specs import TrainJobSpec


def train_entrypoint(spec: TrainJobSpec, resume: bool) -> str:
    command = ["python", "-m", "tandem.train.main", "--spec-json", spec.model_dump_json()]
    if resume:
        command.append("--resume")
    return shlex.join(command)


def batch_entrypoint(spec: BatchPredictSpec) -> str:
    return shlex.join(["python", "-m", "tandem.batch.main", "--spec-json", spec.model_dump_json()])
