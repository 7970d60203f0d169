"""Grading a whole class on Dask: the client reads, the workers grade, the client alone writes.

``python -m cnnbook.grade_batch`` is the command; this package holds its parts, one job each:

:mod:`~cnnbook.batch.files`
    the client reads a student's submitted files as bytes (regular files only, capped) and their
    content hash, and replaces a folder only once its new contents are complete.
:mod:`~cnnbook.batch.template`
    the assignment as a worker needs it: a small course (configuration, source, release and a
    gradebook) generated once per batch and sent to the workers as bytes.
:mod:`~cnnbook.batch.task`
    on a worker: one student graded in a private temporary course, in the sandbox, with the same
    checks as plain ``nbgrader autograde``; returns plain data (graded notebooks, scores, status,
    log).
:mod:`~cnnbook.batch.record`
    on the client: the worker's result into the gradebook, ``autograded/`` and the log.
:mod:`~cnnbook.batch.state`
    on the client: what was graded from which content (reruns skip it), and ``report.csv``.
:mod:`~cnnbook.batch.cluster`
    the Dask cluster (a local one, or an existing one by address) and the progress display.

No file system is shared between the client and the workers, and only the client writes the
gradebook: SQLite and PostgreSQL both work, and a worker that dies loses nothing but its task,
which Dask gives to another worker.
"""
