"""The machine's ceilings (``probe.json``): memory, PCIe, device, peer and disk bandwidths and IOPS."""
