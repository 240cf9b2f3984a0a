"""Mail: builds message bytes (Markdown, layout, personal fields, link tokens, VERP, DKIM); never opens SMTP (E1-E8)."""
