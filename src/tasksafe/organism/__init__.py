"""The aligned model organism: the embedded model made safety-aligned by `tasksafe align`, a
whole pipeline (data, training, measurement) of its own, so it sits above the stages it uses
and the `models` package below it only looks its folder up."""

from tasksafe.organism.align import ALIGN_VERSION, AlignConfig, AlignResult, build_aligned

__all__ = ["ALIGN_VERSION", "AlignConfig", "AlignResult", "build_aligned"]
