"""Pertinent: a self-hosted Amazon Personalize."""

__version__ = "0.1.0"
