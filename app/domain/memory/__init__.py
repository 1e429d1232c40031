"""A session's memory: the window of recent messages and the running summary — how they
are stored (``stored_format``, ``store`` and its scripts), which messages leave the window
(``window``), and the operations the API offers (``service``)."""
