"""Platform-admin pages that belong to no single capability: the audit log, the dev outbox."""
