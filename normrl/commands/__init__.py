"""Subcommands of the ``normrl`` console script.

Every module here defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; :mod:`normrl.cli` discovers them.
"""
