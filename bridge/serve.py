"""`webhook-bridge`: serve with gunicorn and the shipped settings (bridge.gunicorn_conf),
as `make run` does, for an installed package (`pip install .`). Arguments after the
command go to gunicorn (`webhook-bridge --workers 4`); the config file is
`$BRIDGE_CONFIG` or `config.yaml` in the current folder."""

from __future__ import annotations

import sys

from gunicorn.app.wsgiapp import run


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["webhook-bridge", "-c", "python:bridge.gunicorn_conf", *args, "bridge:create_app()"]
    run()


if __name__ == "__main__":
    main()
