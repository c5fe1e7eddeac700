"""Built-in executors; each is a plugin registered through an entry point.

An executor runs one execution of a job and hands the worker an
:class:`~pinball_core.components.ExecutionHandle` to wait on or abort. The
``local`` executor (:mod:`pinball_core.executors.local`) runs it as a child
process group of the worker. The pieces it is built from are usable by other
executors too: :mod:`~pinball_core.executors.magic` collects the ``PINBALL:``
lines of a job's output, and :mod:`~pinball_core.executors.output` copies an
output stream into its log file.
"""
