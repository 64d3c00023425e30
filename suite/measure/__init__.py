"""One configuration, measured: its ``Config`` type, the per-configuration lifecycle, one module per mode (gather,
sample, train), the measured window, records and the rank merge."""
