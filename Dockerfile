# One image, two roles (Google's recommended pattern for Python Flex Templates):
#  - the Flex Template launcher runs /opt/google/dataflow/python_template_launcher, which calls
#    `python $FLEX_TEMPLATE_PYTHON_PY_FILE --param=value ... --runner=DataflowRunner ...`;
#  - Dataflow workers run it as the Beam SDK container (ENTRYPOINT /opt/apache/beam/boot).
# Every dependency is installed here from the lock, so nothing is installed at launch time or on
# workers. Versions must match requirements.txt (a test checks it). Build: see README.
ARG PYTHON_VERSION=3.11.14
ARG BEAM_VERSION=2.77.0
# The launcher is a standalone Go binary, copied from Google's launcher base image at a dated tag.
# The tags and their release notes are listed on Dataflow's "Flex Templates base images" page
# (https://cloud.google.com/dataflow/docs/reference/flex-templates-base-images); move this to the
# newest one marked (latest) there (README, "Build").
ARG LAUNCHER_TAG=20260122_RC00

FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam_sdk

FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:${LAUNCHER_TAG} AS template_launcher

FROM python:${PYTHON_VERSION}-slim-bookworm

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
COPY --from=template_launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

WORKDIR /template
# MALLOC_ARENA_MAX: two glibc malloc arenas instead of one per allocating thread (gRPC runs many);
# the same setting local runs use (pipeline/run.py, bench/NOTE.md).
# *_NUM_THREADS: --model_threads' default, for the OpenMP/BLAS pools of every process from its start
# (Dataflow runs one SDK process per vCPU); the pipeline sets them again from --model_threads
# (pipeline/utils/threads.py).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml main.py ./
COPY pipeline ./pipeline
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && python -c "from pipeline.models import statistical; statistical.warm_up()"
# ^ the statistical models fit in this image. statsforecast 2.x is compiled C++, not Numba: there is no
# JIT cache to build (NUMBA_CACHE_DIR would be unused); workers pay its imports once per process (DoFn.setup).

# The image's own URI (workers default to it, see pipeline/run.py) and the source commit.
ARG PIPELINE_IMAGE=""
ARG GIT_COMMIT=unknown
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py \
    PIPELINE_IMAGE=${PIPELINE_IMAGE} \
    PIPELINE_GIT_COMMIT=${GIT_COMMIT}

ENTRYPOINT ["/opt/apache/beam/boot"]
