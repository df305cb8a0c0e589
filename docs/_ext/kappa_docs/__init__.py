"""Sphinx extensions of the tensorflow_kappa documentation, each generating pages or
tables from the code at build time: :mod:`.api` (the API reference from the
package's exports), :mod:`.cli` (the ``kappa`` commands from their argparse parsers)
and :mod:`.formats` (the number formats and rounding/overflow modes from their one
definition)."""
