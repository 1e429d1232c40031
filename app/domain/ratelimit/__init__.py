"""Rate limiting in the domain: a request's charge against its tenant's limits (the
``limits`` package's counters and arithmetic), and the ride that lets a store run it in
the request's own round trip."""
