"""The calculator's own Prometheus metrics (its /metrics also has the HTTP and lag ones)."""

from prometheus_client import Counter

JOBS_FINISHED = Counter(
    "pi_jobs_jobs_finished_total", "Jobs a calculator finished", ["outcome", "digits_source"]
)
DIGITS_COMPUTED = Counter("pi_jobs_digits_computed_total", "Decimals of pi computed")
JOBS_FROM_STORED = Counter(
    "pi_jobs_jobs_served_from_stored_digits_total", "Jobs completed from digits already stored"
)
