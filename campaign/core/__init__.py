"""What every capability shares: the base model, permissions, tokens, mail outbox, crypto."""
