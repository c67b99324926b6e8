"""The bridge's side of gunicorn: a worker that receives requests whole before a
thread takes them (`worker`), how it finds where one ends (`framing`), the share of its
threads a plugin's webhooks may hold (`shares`), the answers it writes itself
(`answers`), and an access log that redacts query strings (`access_log`)."""
