"""Running the product: the runtime (database, Redis, workers, wakeups wired together),
the time machine for tests and demos, live statistics, metrics, health checks, accounts
and API keys, request throttling, and the demo data."""
