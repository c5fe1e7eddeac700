"""Test suites that plugins run against their own implementations."""
