"""Pinball's email notifier: job failures, warn timeouts, instance ends and
refused schedules, mailed as plain text and HTML through an SMTP server.

Pinball loads it through the ``pinball.notifiers`` entry point ``email``;
its options live under ``plugins: {email: {...}}`` in the config. See the
README for what is mailed to whom.
"""

from pinball_notifier_email.plugin import EmailNotifier
from pinball_notifier_email.settings import EmailSettings, settings_from_config

__all__ = ["EmailNotifier", "EmailSettings", "settings_from_config"]
