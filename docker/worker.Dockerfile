# syntax=docker/dockerfile:1
# The image every Ray node runs (KubeRay head and workers, the compose `worker` service, or `docker.image` in
# cluster/aws-gpu.yaml once pushed to a registry). Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t unlearn-sweep-worker:ray2.58.0-py311-gpu .
# RAY_VERSION must equal cluster/*.yaml's and the `ray` of every client that submits to the cluster.
ARG RAY_VERSION=2.58.0
ARG PYTHON=py311
# CUDA-based Ray image: Ray, conda Python, non-root user `ray` (uid 1000, gid 100), home /home/ray.
FROM rayproject/ray:${RAY_VERSION}-${PYTHON}-gpu
ARG RAY_VERSION
# Empty: torch from PyPI, whose bundled CUDA needs a recent host driver. For an older driver pick a wheel index
# that matches it, e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_INDEX_URL=""

USER ray
# Created by `ray`, not by WORKDIR (which may create it as root): the build writes into it.
RUN mkdir -p /home/ray/unlearn-sweep /home/ray/data
WORKDIR /home/ray/unlearn-sweep

# Dependencies first, from the project's metadata with empty packages, so that editing the code does not
# re-download torch; then the package itself, as a wheel (configs/ ships inside it: setup.py).
COPY --chown=1000:100 pyproject.toml setup.py MANIFEST.in README.md ./
RUN mkdir orchestrator workloads configs && touch orchestrator/__init__.py workloads/__init__.py \
 && if [ -n "$TORCH_INDEX_URL" ]; then pip install --no-cache-dir torch torchvision --index-url "$TORCH_INDEX_URL"; fi \
 && pip install --no-cache-dir . "ray[default,tune]==${RAY_VERSION}" && pip uninstall -y unlearn-sweep

COPY --chown=1000:100 orchestrator orchestrator
COPY --chown=1000:100 workloads workloads
COPY --chown=1000:100 configs configs
COPY --chown=1000:100 cluster cluster
RUN pip wheel --no-cache-dir --no-deps -w /tmp/wheels . && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels build *.egg-info
# Fails the build if the pin drifted, the console script is missing or the installed package lacks its configs.
RUN python -c "import ray, sys; sys.exit(ray.__version__ != '${RAY_VERSION}')" && cd /tmp \
 && unlearn-sweep plan quickstart --no-estimate --tracking-uri sqlite:////tmp/plan-check.db > /dev/null && rm /tmp/plan-check.db
