"""The run view (live charts, progress with ETA, log, summary card) and the run's worker."""
