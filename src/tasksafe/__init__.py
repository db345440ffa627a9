"""tasksafe: keep task-specific fine-tuning of chat models safe.

Stages (one subpackage each): data -> strategies -> audit / mitigations -> train -> generate
-> judges -> evaluate -> experiments -> report. Importing this package is cheap: heavy
libraries (torch, transformers, datasets) load only inside the code that needs them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
