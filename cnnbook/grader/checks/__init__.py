"""The trusted comparison of each assignment, one module per assignment (see :mod:`cnnbook.grader.plan`).

These modules run only in the grader's process: the sandboxed kernel does not see this package.
"""
