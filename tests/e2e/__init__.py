"""End-to-end tests: the real app behind a real HTTP server, driven by Debian's Chromium."""
