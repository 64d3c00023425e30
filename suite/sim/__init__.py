"""Simulation of the ``cached`` strategy: trace recording, trace replay over N GPUs, hardware profiles."""
