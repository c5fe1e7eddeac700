"""The workflow layer: jobs, events and signals kept as tokens in the master."""
