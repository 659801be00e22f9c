# The example training image: runctl's training scripts on a slim Python with their requirements.
# Build: runctl docker build --tag mnist   (or: docker build -t mnist .)
# Run:   docker run --rm -e RUNCTL_CHECKPOINT_DIR=/ckpt -v "$PWD/ckpt:/ckpt" mnist --epochs 2
# On an instance: runctl aws train ID training/train_mnist.py --docker --wait -- --epochs 2
#   (the code is mounted and the ENTRYPOINT replaced by the script's command; the image brings
#   Python and the packages)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY training/requirements.txt training/requirements.txt
RUN python -m pip install -r training/requirements.txt
COPY training/ training/

ENTRYPOINT ["python", "training/train_mnist.py"]
