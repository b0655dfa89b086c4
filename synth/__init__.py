"""Trajectory synthesis: strategies, the rollout engine, curation, sharded datasets, reports, evaluation."""
