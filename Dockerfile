# The inference server alone: the Dify plugin's files stay out of the image (see .dockerignore and the COPY lines).
#
# BASE_IMAGE: any Debian or Ubuntu image whose python3 is 3.12 or newer. The default is NVIDIA's CUDA runtime on
# Ubuntu 24.04 (python3 3.12). PyPI's torch wheels bring their own CUDA libraries, so what the host needs is a
# driver recent enough for them (PyPI's torch 2.15 is built for CUDA 13: driver 580 or newer). For an older
# driver, take wheels built for an older CUDA: --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu128
# `make image-test` builds this file on a local Debian trixie base (python3 3.13) and runs the tiny model in it.
ARG BASE_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

# Build arguments are environment variables of the RUN steps: pip reads this one itself.
ARG PIP_EXTRA_INDEX_URL=""
# WITH_RAY=1 (the default) adds Ray Serve, for EXECUTOR=ray (docs/deploy.md): about 480 MB more. Every box of a
# Ray cluster runs this same image. WITH_RAY=0 makes a single-box image without it.
ARG WITH_RAY=1

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -c 'import sys; assert sys.version_info >= (3, 12), "the server needs Python 3.12+, the base has " + sys.version'

# The dependencies first, in their own layer: code changes do not reinstall torch.
COPY inference_server/requirements.txt inference_server/requirements-ray.txt /app/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r /app/requirements.txt \
 && if [ "$WITH_RAY" = "1" ]; then /opt/venv/bin/pip install -r /app/requirements-ray.txt; fi

# A fixed uid, so bind-mounted folders can be given to it on the host: chown 10001 <folder>.
RUN useradd --system --uid 10001 --user-group --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data /models \
 && chown app:app /data /models

COPY --chown=root:root inference_server /app/inference_server

# NVIDIA_*: the NVIDIA container toolkit exposes the GPUs and the driver by these (the CUDA bases set them too).
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data \
    HF_HOME=/models \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Results and the job store; the Hugging Face cache, with the weights downloaded once on the host.
VOLUME ["/data", "/models"]
USER app
WORKDIR /app
EXPOSE 8000

# /readyz answers 200 once the model is loaded and the worker is healthy. Loading the real model takes minutes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=8)"]

# HOST=0.0.0.0 makes the server refuse to start without API_KEYS: pass them at run time, never bake them in.
CMD ["python3", "-m", "inference_server", "serve"]
