"""The sending engine: claims due work from the database and sends it over SMTP.

No Flask request code: it runs the same from the worker, `send-due`, tests and benchmarks."""
