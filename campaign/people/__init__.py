"""Supporters of a group (with or without accounts), their consent history, tags and
suppressions, subscriptions with double opt-in, import and export."""
