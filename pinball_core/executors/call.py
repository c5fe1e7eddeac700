"""Runs a Python job: ``python -m pinball_core.executors.call module:function``.

The local executor starts this in a child process for jobs of kind
``python``, so whatever the function does (crash the interpreter, leak
memory, change global state) stays in that child. The function is called
with no arguments. The exit code is 0 when it returns, or the int it returns;
1 with the traceback on stderr when it raises; 1 with one line on stderr
when the module or the function cannot be found.
"""

import importlib
import sys
import traceback
from collections.abc import Callable

# Exit codes a process can report; anything else would be cut to 8 bits.
_EXIT_CODES = range(256)


def main(argv: list[str] | None = None) -> int:
    """Call the ``module:function`` named by the only argument; its exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return _fail(f"expected one argument, module:function; got {len(args)}")

    target = args[0]
    function = _find(target)
    if function is None:
        return 1

    try:
        result = function()
    except Exception:
        traceback.print_exc()
        return 1

    if not isinstance(result, int) or isinstance(result, bool):
        return 0
    if result not in _EXIT_CODES:
        return _fail(
            f"{target} returned {result}, which is not an exit code (0 to 255); "
            f"exiting with 1"
        )
    return result


def _find(target: str) -> Callable[[], object] | None:
    """The function ``target`` names, or None after saying why on stderr."""
    module_name, colon, function_name = target.partition(":")
    if not (colon and module_name and function_name):
        _fail(f"cannot run {target!r}: write the command as module:function")
        return None

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the job's own module missing is a one-line error; a module it
        # imports that is missing is a fault in the job, shown with traceback.
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            _fail(
                f"cannot run {target!r}: no module named {missing!r}; "
                f"is it on the worker's PYTHONPATH?"
            )
        else:
            traceback.print_exc()
        return None
    except Exception:
        traceback.print_exc()
        return None

    function: object = getattr(module, function_name, None)
    if function is None:
        _fail(f"cannot run {target!r}: module {module_name!r} has no {function_name!r}")
        return None
    if not callable(function):
        _fail(f"cannot run {target!r}: {function_name!r} is not a function")
        return None
    return function


def _fail(message: str) -> int:
    print(f"pinball: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
