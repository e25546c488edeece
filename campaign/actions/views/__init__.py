"""Action pages: the public side (public.py) and the organisers' (organiser.py), one blueprint."""

from flask import Blueprint

bp = Blueprint("actions", __name__)
from campaign.actions.views import organiser, public  # noqa: E402, F401
