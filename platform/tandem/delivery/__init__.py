"""Deliveries: a candidate version taken to an alias with evidence at every step, rolled
back automatically when a guard fails (``tandem deliver``)."""

from tandem.delivery.pipeline import deliver, deliveries
from tandem.delivery.record import DeliveryRecord, StepRecord

__all__ = ["DeliveryRecord", "StepRecord", "deliver", "deliveries"]
