"""Domain logic: plain Python, no Flask. One package per concern — ``memory`` (sessions),
``folding`` (summarization), ``scheduling`` (background jobs, exactly once), ``search``
(long-term memory), ``context`` (what to send a model), ``transfer`` (export, import,
MotorHead migration), ``tenancy`` (tenants, keys, usage), ``ratelimit`` — over the shared
``keyspace`` (every Redis key name), ``redis_access``, ``tokens``, ``clock`` and ``errors``."""
