# Sourced on the GPU machine from the repository root (see docs/scaling.md, "A lent GPU"):
# installs the carried wheels, puts the carried models where tasksafe looks, checks the stack.
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=$PWD/src:/tmp/site TASKSAFE_DATA_DIR=$PWD/.gpu/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/models /tmp/xfer && cp -rn .gpu/cache/models/* /tmp/models/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft, datasets, pydantic, tasksafe.cli.main as m; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)" || return 1
