"""Built-in stores; each is a plugin registered through an entry point."""
