"""Entry point for workers: ``celery -A campaign.celery worker`` (and ``beat``)."""

from campaign import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
