"""Training: a spec becomes DDP workers in the train pool, checkpoints, a registry version."""

from tandem.train.job import TrainResult, preflight, run

__all__ = ["TrainResult", "preflight", "run"]
