"""Fixtures for campaign email: a group with an organiser (the SMTP sink is shared)."""

from __future__ import annotations

import pytest


@pytest.fixture
def organiser(make):
    return make.user("organiser@example.org", name="Olu Organiser")


@pytest.fixture
def group(make, organiser):
    return make.group("Riverside Health Justice", organiser=organiser)
