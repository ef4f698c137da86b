# syntax=docker/dockerfile:1
# Image of the genai_assets code location: the gRPC code server of the Helm
# user deployment, and the image of every run pod the K8sRunLauncher starts.
#
# CPU (default):
#   docker build -t registry.corvid.example/genai-assets:0.1.0 .
# CUDA, for GPU nodes (torch's CUDA build from PyPI bundles the CUDA runtime;
# the NVIDIA driver comes from the node):
#   docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
#     -t registry.corvid.example/genai-assets:0.1.0-cuda .
#
# Installs the project the way the README does: torch==2.13.0 first, then the
# package, so that installing the package never pulls another torch build.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    RAGAS_DO_NOT_TRACK=true \
    TOKENIZERS_PARALLELISM=false
ENV GENAI_ASSETS_ENV=production

WORKDIR /opt/dagster/app

# 1. torch, from the index that decides CPU or CUDA.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# 2. The package (its torch range is satisfied by the build above).
COPY pyproject.toml README.md ./
COPY genai_assets ./genai_assets
RUN pip install . \
    && pip check \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

# Run as an unprivileged user; DAGSTER_HOME/storage holds caches (e.g. model
# folders downloaded from S3), so it must be writable.
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p "${DAGSTER_HOME}/storage" \
    && chown -R dagster:dagster "${DAGSTER_HOME}"
USER 10001

EXPOSE 3030
# The Helm chart passes its own `dagster api grpc` arguments; this default
# serves the same code location when the image runs on its own.
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", \
     "--python-file", "genai_assets/definitions.py", "--working-directory", "/opt/dagster/app"]
