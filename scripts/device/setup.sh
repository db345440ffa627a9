# Sourced on the GPU machine from the repository root, in every call (docs/scaling.md, "A lent
# GPU machine"): installs the carried wheels once, keeps the carried data and models outside the
# checkout (ignored paths a call does not carry are removed there), sets tasksafe's environment.
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || return 1
[ -d .gpu/data ] && { rm -rf /tmp/data; cp -r .gpu/data /tmp/data; }
mkdir -p /tmp/models /tmp/xfer
[ -d .gpu/cache/models ] && cp -r .gpu/cache/models/. /tmp/models/
# USE_HUB_KERNELS=0: transformers would replace layers by kernels fetched from the Hub (the
# machine cannot reach it); the plain PyTorch path is also the one the CPU cells ran.
export PYTHONPATH=$PWD/src:/tmp/site TASKSAFE_DATA_DIR=/tmp/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 USE_HUB_KERNELS=0
