"""Pinball's own overrun policies, each a plugin of kind ``overrun_policy``.

They are entry points of the ``pinball-core`` distribution in the group
``pinball.overrun_policies``, found and loaded like any third-party policy;
a schedule names one by its entry-point name (``SKIP``, ``DELAY``, ...).
"""
