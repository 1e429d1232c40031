"""Background work off the request path, exactly once across processes: a due set per kind
of job (``due_set``: claims with leases, ``claims``), and the runner of one process (a
bounded pool and a sweeper: ``runner``). Folding and indexing are its two jobs."""
