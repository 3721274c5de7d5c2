"""Training: typed run configs, the :class:`~deepdenoise.training.trainer.Trainer`, atomic
checkpoints that resume bit for bit, and data-parallel runs."""
