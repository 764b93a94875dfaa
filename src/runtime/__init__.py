"""The runtime every layer stands on: errors, console, devices, provenance, checkpoints,
configs, deadlines, callbacks and loggers. It imports no part and no evaluation."""
