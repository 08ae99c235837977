"""Renderings of footprint's results: JSON documents (the contract) and text for humans."""

SCHEMA_VERSION = 1
