"""gunicorn settings: ``gunicorn 'campaign.wsgi:app'`` run from this folder reads them.

The worker count is the app's WEB_WORKERS setting (WEB_WORKERS, else WEB_CONCURRENCY,
else 1), so create_app() knows how many processes share the rate limits and refuses
``memory://`` limiter storage when there are several.
"""

import os

from config import web_workers

workers = web_workers()
worker_class = "sync"
bind = os.environ.get("BIND", "127.0.0.1:8000")
