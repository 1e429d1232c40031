"""The operator console (``/console``): tenants, keys, usage over time, sessions, in the
browser. It signs operators in with the admin token itself (a session cookie), so the
app-level authentication hook leaves it alone."""

from app.console.views import bp

__all__ = ["bp"]
