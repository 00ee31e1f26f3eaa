"""The ``lungkd`` command line: :mod:`.main` builds the parser, one module per sub-command."""
