"""The test suite, laid out as the package is: ``tests/<module or subpackage>/``; helpers in ``tests/support/``."""
