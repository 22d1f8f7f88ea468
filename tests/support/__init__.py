"""Helpers the tests share (local servers, inputs, writers of what AWS would write, checks of templates and policies).

The only place test code imports from: no test module or conftest imports another (tests/packaging/test_layout.py).
"""
