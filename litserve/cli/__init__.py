"""The ``litserve`` command line (``litserve.cli.main:main``)."""
