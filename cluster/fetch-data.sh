#!/usr/bin/env bash
# Puts what configs/sweeps/cifar10_resnet18_study.yaml reads under DEST (default /home/ray/data), skipping what is
# already there; needs `unlearn-sweep` installed (it uses the project's own CIFAR loader, which checks every md5):
#   DEST/cifar10/cifar-10-batches-py/              -> dataset.args.root=DEST/cifar10
#   DEST/cscores/cifar10-cscores-orig-order.npz     -> memorization.scores_file=DEST/cscores/cifar10-cscores-orig-order.npz
# Run by cluster/aws-gpu.yaml's setup_commands and by the KubeRay manifests' init containers.
set -euo pipefail
python - "${1:-/home/ray/data}" <<'PY'
import sys
import urllib.request
from pathlib import Path

import numpy as np

from workloads.data.cifar import ensure_files, layout

dest = Path(sys.argv[1])
ensure_files(layout("cifar10"), dest / "cifar10", True)
scores = dest / "cscores" / "cifar10-cscores-orig-order.npz"
if not scores.is_file():
    scores.parent.mkdir(parents=True, exist_ok=True)
    partial = scores.with_name(scores.name + ".part")
    urllib.request.urlretrieve(
        "https://pluskid.github.io/structural-regularity/cscores/cifar10-cscores-orig-order.npz", partial)
    with np.load(partial) as z:
        if not {"labels", "scores"} <= set(z.files):
            sys.exit(f"{partial}: no `labels`/`scores` arrays, not the C-score file")
    partial.rename(scores)
print(f"CIFAR-10 and its C-scores are under {dest}")
PY
