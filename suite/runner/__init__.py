"""Sweeps: expand the matrix, run each configuration in its own worker process (isolation), plugins, several ranks
under torchrun. Calls ``suite.measure`` for one configuration; never measures anything itself."""
