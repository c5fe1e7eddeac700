"""The Python half of the parameter-passing example."""


def emit() -> None:
    """Pass a value to downstream jobs: print a PINBALL:EVENT_ATTR line."""
    print("computing a value in Python")
    print("PINBALL:EVENT_ATTR:a_python_key=a_python_value", flush=True)
