"""Support shared by the tests and the benchmarks: live servers, throwaway databases, the ledger audit.

``tests/`` and ``bench/`` both import this package; it imports neither of them.
"""
