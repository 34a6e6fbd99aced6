"""Email notifications: templates, the outbox and its dispatcher."""
