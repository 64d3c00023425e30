#!/usr/bin/env bash
# asv smoke run for CI: every benchmark once (--quick) in the current environment, results saved under the
# current commit, then the static site built. asv exits non-zero when any benchmark fails (skips are fine).
# Usage: .ci/asv.sh   (needs the project importable, e.g. `pip install -e ".[test]"`)
set -euo pipefail
cd "$(dirname "$0")/.."
# asv.conf.json says "spawn" (CUDA cannot be initialised in a forked child). Without a GPU, forking from a server
# that has imported torch once is several times faster.
launch=spawn
if [ "$(python3 -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null)" = "False" ]; then
    launch=forkserver
fi
asv machine --yes >/dev/null
asv run --python=same --quick --show-stderr --launch-method "$launch" --set-commit-hash "$(git rev-parse HEAD)"
asv publish
echo "asv.sh: site in .asv/html (browse with: asv preview)"
