"""Building the UI's Tornado application, and serving it."""

import concurrent.futures
import pathlib
import threading
from typing import Any, Final

import tornado.web
from pinball_core.app import Application
from pinball_core.store import Store

from pinball_ui_tornado import pages
from pinball_ui_tornado.access import Access, access_from_config
from pinball_ui_tornado.actions import Runner
from pinball_ui_tornado.base import MasterProbe, Refusal, Ui
from pinball_ui_tornado.graphs import GraphCache
from pinball_ui_tornado.reads import Reader

PACKAGE_DIR: Final = pathlib.Path(__file__).parent

#: Threads that read the database and lay out graphs for the handlers.
READ_THREADS: Final = 4


class NotFoundPage(pages.PageHandler):
    """Any URL no route knows."""

    def prepare(self) -> None:
        super().prepare()
        raise Refusal(404, f"no page {self.request.path}")


def build_ui(
    app: Application,
    store: Store,
    *,
    access: Access | None = None,
    listen: str = "",
) -> Ui:
    """The shared state of a UI on ``app``'s config, reading ``store``."""
    config = app.config
    return Ui(
        app=app,
        reader=Reader(store, str(config.logs_dir)),
        access=access if access is not None else access_from_config(config),
        runner=Runner(app),
        graphs=GraphCache(),
        probe=MasterProbe(config.master_host, config.master_port, config.master_secret),
        pool=concurrent.futures.ThreadPoolExecutor(
            max_workers=READ_THREADS, thread_name_prefix="pinball-ui-read"
        ),
        listen=listen,
        debug=app.debug,
    )


def make_app(ui: Ui) -> tornado.web.Application:
    """The Tornado application serving the pages, the API and static files."""
    settings: dict[str, Any] = {
        "template_path": str(PACKAGE_DIR / "templates"),
        "static_path": str(PACKAGE_DIR / "static"),
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"samesite": "Strict"},
        "cookie_secret": ui.access.cookie_secret,
        "default_handler_class": NotFoundPage,
        "default_handler_args": {"ui": ui},
        "compress_response": True,
        "debug": False,
    }
    return tornado.web.Application(pages.routes(ui), **settings)


def start_warm_up(ui: Ui, stop: threading.Event) -> threading.Thread:
    """Read the archive's summaries in the background, so lists are quick."""
    thread = threading.Thread(
        target=ui.reader.history.warm_up,
        args=(stop,),
        name="pinball-ui-history",
        daemon=True,
    )
    thread.start()
    return thread


def close_ui(ui: Ui) -> None:
    ui.runner.close()
    ui.pool.shutdown(wait=False, cancel_futures=True)
