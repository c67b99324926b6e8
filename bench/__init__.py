"""`make bench`: real gunicorn servers under bounded load, one table of figures and ratios.

Run `python -m bench` (or `make bench`); `python -m bench --smoke` is the tiny mode that
`make test` uses. Results go to stdout and to `bench/RESULTS.md`.
"""
