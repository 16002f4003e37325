"""Evals: each module registers one eval in `harness.evals.registry`; importing this package registers them all."""

from harness.evals import perplexity, safety, similarity  # noqa: F401  (importing registers them)
