"""One settings module per stack; ``base`` holds what the three share."""
