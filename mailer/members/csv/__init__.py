"""CSV export and consent-safe import of members (J6, C1, C3).

parse    reading a file: strict UTF-8, the columns, each row checked without the database
plan     what an import would do to each row (the preview), and the summary pages show
apply    writing the plan a chunk at a time, through the same consent and outbox functions a join uses
export   every member as CSV, in the columns an import reads
uploads  the stored file the web import previews, then applies"""
