"""Summarization, one fold of one session at a time (run by ``scheduling``'s runner): the fold
itself (lock and read → plan → summarize → commit: ``fold``), its Redis commands (``store``
and its scripts) and the summarizers (``summarizer``, ``openai_completion``, ``extractive``)."""
