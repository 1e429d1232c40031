"""Long-term memory's search: every message of a session, window and archive, indexed off
the request path exactly once (``indexing``) into keyword postings and, with embeddings
configured, vectors (``store`` and its scripts); ranked by BM25 (``keyword``), exact
cosine (``vectors``) or both fused (``fusion``); served per session or tenant-wide
(``service``)."""
