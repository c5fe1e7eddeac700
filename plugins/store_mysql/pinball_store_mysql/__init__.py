"""Pinball's store on MySQL and MariaDB, through SQLAlchemy and PyMySQL.

Select it with ``store: mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE`` or
a ``databases:`` entry with ``ENGINE: django.db.backends.mysql``.
"""

from pinball_store_mysql.options import MysqlOptions
from pinball_store_mysql.store import MysqlStore, StoreInDoubtError

__all__ = ["MysqlOptions", "MysqlStore", "StoreInDoubtError"]
