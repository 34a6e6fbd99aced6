"""Alembic migrations of partnerflow (run them with `partnerflow db upgrade`)."""
