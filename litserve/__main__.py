"""``python -m litserve ...`` is the ``litserve`` command."""

from litserve.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
