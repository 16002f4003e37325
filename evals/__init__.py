"""Evals: each module registers one eval in `evals.registry`; importing this package registers them all."""
