"""The test-only ``test-faulty`` strategy, as plugin source that tests write to a file and name in
``ACCESSBENCH_PLUGINS`` for worker processes (registering it in the test process would leak into other tests)."""

from __future__ import annotations

import textwrap

__all__ = ["PLUGIN"]

PLUGIN = textwrap.dedent('''
    """Test-only strategy: gathers like features[ids] until its ``after``-th gather, then fails as told."""
    import ctypes
    import os
    import time
    from dataclasses import dataclass
    from typing import Literal

    import torch

    from accessbench.kernels.base import AccessStrategy, check_ids
    from accessbench.kernels.registry import register
    from accessbench.kernels.sampling import sample_blocks


    @dataclass(frozen=True)
    class FaultyOptions:
        how: Literal["ok", "segfault", "raise", "hang", "hang-if-env", "exit", "oom", "crash-at-exit"] = "ok"
        after: int = 0


    @register("test-faulty")
    class Faulty(AccessStrategy):
        Options = FaultyOptions

        def prepare(self, graph, device):
            self.graph, self.device, self.calls = graph, device, 0
            if self.options.how == "crash-at-exit":  # like a driver teardown crash after the work is done
                import atexit
                atexit.register(ctypes.string_at, 0)

        def sample(self, seeds, fanouts, *, generator):
            g = self._require_prepared()
            return sample_blocks(g.indptr, g.indices, check_ids(seeds, g.num_nodes), fanouts, generator)

        def gather(self, ids):
            g = self._require_prepared()
            with self.phase("gather"):
                self.calls += 1
                if self.calls > self.options.after:
                    how = self.options.how
                    if how == "segfault":
                        ctypes.string_at(0)
                    elif how == "raise":
                        raise RuntimeError("planted failure")
                    elif how == "hang" or (how == "hang-if-env" and os.environ.get("FAULTY_HANG")):
                        time.sleep(3600)
                    elif how == "exit":
                        os._exit(7)
                    elif how == "oom":
                        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                return g.features[check_ids(ids, g.num_nodes)]
''')
