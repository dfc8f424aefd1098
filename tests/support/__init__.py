"""Helpers for the cross-distribution tests: real OGX servers, run configs, free ports."""
