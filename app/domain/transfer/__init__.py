"""Export and import: a session or a tenant out as NDJSON and back in (``format``,
``export``, ``importer``, ``service``, their Redis commands in ``store`` and its scripts),
and a MotorHead deployment's Redis copied into a tenant (``motorhead``, ``migration``)."""
