"""Training: the LightningModule, callbacks, schedules, checkpoint I/O, resuming and preemption."""
