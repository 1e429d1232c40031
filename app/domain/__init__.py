"""Domain logic: plain Python, no Flask. One package per concern — ``memory`` (sessions),
``folding`` (summarization), ``tenancy`` (tenants, keys, usage), ``ratelimit`` — over the
shared ``keyspace`` (every Redis key name), ``redis_access``, ``tokens``, ``clock`` and
``errors``."""
