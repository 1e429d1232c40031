"""Who uses the service and on what terms: tenants and their policies, API keys, the
authentication that turns a key into a principal, and per-tenant usage."""
