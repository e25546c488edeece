"""Email to a group's lists: segments, composed messages, sending, unsubscribe, bounces."""
