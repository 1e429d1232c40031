"""Summarization off the request path, exactly once across processes: the schedule (due
set, claims, sweeper, pool: ``runner``, ``claims``, ``store``), one fold (lock → plan →
summarize → commit: ``fold``) and the summarizers."""
