"""Pinball web UI."""
