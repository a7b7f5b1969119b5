"""Serving: what NVIDIA Triton Inference Server consumes, derived from a bundle's manifest.

edge-se never runs a server of its own; it writes model repositories that Triton serves.
"""
