"""Evals: each module registers one eval in `evals.registry`; importing this package registers them all."""

from evals import perplexity, safety, similarity  # noqa: F401  (importing registers them)
