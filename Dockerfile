# syntax=docker/dockerfile:1
# Image of the genai_assets code location: the gRPC code server of the Helm user
# deployment, the image of every run pod the K8sRunLauncher starts, and (CUDA
# variant) the training pod and GPU steps. README "Production" has the commands:
#
#   docker build -t registry.corvid.example/genai-assets:0.1.0 .
#   docker build --build-arg VARIANT=cuda -t registry.corvid.example/genai-assets:0.1.0-cuda .
#
# Layers, from the least to the most often changed: torch, then the dependencies
# listed in pyproject.toml, then the code. A code change rebuilds only the last,
# small layer. The package is installed (not editable) and loaded by module name
# (`-m genai_assets.definitions`, as in helm/values.yaml and workspace.yaml); no
# source tree stays in the image, so the code is loaded from one place only.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# cpu: torch's CPU build (about 200 MB). cuda: torch's PyPI build, which bundles
# the CUDA runtime (several GB); the NVIDIA driver comes from the GPU node.
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0

# TOKENIZERS_PARALLELISM is a tokenizers setting, not a secret (hadolint's
# DL3064 matches "TOKEN" in its name).
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    RAGAS_DO_NOT_TRACK=true \
    TOKENIZERS_PARALLELISM=false \
    GENAI_ASSETS_ENV=production

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# 1. torch, first, from the index that decides CPU or CUDA: installing the
#    dependencies first would pull PyPI's CUDA build into the CPU image.
RUN case "${VARIANT}" in \
      cpu) index=https://download.pytorch.org/whl/cpu ;; \
      cuda) index=https://pypi.org/simple ;; \
      *) echo "VARIANT must be cpu or cuda, got '${VARIANT}'" >&2; exit 1 ;; \
    esac \
    && pip install --index-url "${index}" "torch==${TORCH_VERSION}"

# 2. The dependencies of pyproject.toml (torch's range there is satisfied by step 1).
#    Cached until pyproject.toml changes.
COPY pyproject.toml /tmp/build/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt

# 3. The code: the package alone, then the build folder goes away.
COPY README.md /tmp/build/README.md
COPY genai_assets /tmp/build/genai_assets
RUN pip install --no-deps /tmp/build \
    && pip check \
    && rm -rf /tmp/build \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

# Run as an unprivileged user; DAGSTER_HOME/storage holds caches and the batch
# inference journal (a volume on Kubernetes), so it must be writable.
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p "${DAGSTER_HOME}/storage" /opt/dagster/app \
    && chown -R dagster:dagster "${DAGSTER_HOME}" /opt/dagster/app
USER 10001
# Empty on purpose: nothing here can shadow the installed package.
WORKDIR /opt/dagster/app

EXPOSE 3030
# The Helm chart passes its own `dagster api grpc` arguments (the same module);
# this default serves the code location when the image runs on its own.
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", "--module-name", "genai_assets.definitions"]
