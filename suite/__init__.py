"""accessbench suite: the runner, telemetry, result records, the CLI, the hardware probe and the GPU check."""
