"""Logs: structured log lines and keeping addresses, tokens and secrets out of them."""
