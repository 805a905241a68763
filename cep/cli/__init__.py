"""The `cep` command line, one module per command group.

`app` builds the argument parser and holds `main`, the one place where a usage error
raised by any command is printed and turned into its exit status; `rules` has `check`
and `replay`, `live` has `run` and `record`, `tools` has `test`, `import` and `graph`,
and `common` what they share (exit statuses, loading rules, time zones).
"""

from cep.cli.app import main

__all__ = ["main"]
