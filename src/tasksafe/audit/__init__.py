"""Audit: infer a user dataset's frame(s) and report risk findings with evidence."""

from tasksafe.audit.findings import AuditReport, Finding, audit_examples, known_harmful_index, render_report
from tasksafe.audit.frame import Frame, Template, frame_messages, induce_template, infer_frame, infer_frames
from tasksafe.audit.language import guess_language

__all__ = [
    "AuditReport", "Finding", "Frame", "Template", "audit_examples", "frame_messages", "guess_language",
    "induce_template", "infer_frame", "infer_frames", "known_harmful_index", "render_report",
]
