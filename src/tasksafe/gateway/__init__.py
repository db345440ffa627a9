"""The provider gateway (`tasksafe serve`): an OpenAI-compatible fine-tuning service that
audits, protects and safety-gates every job (docs/gateway.md)."""

from tasksafe.errors import require

require("fastapi", "gateway")
require("uvicorn", "gateway")
