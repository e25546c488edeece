"""WSGI entry point for production: ``gunicorn 'campaign.wsgi:app'``."""

from campaign import create_app

app = create_app()
