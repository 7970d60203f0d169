"""Helpers shared by the CNN course book's pages, tests and graders.

* :mod:`cnnbook.data`: real MNIST and Fashion-MNIST, offline (``load_mnist``,
  ``load_fashion_mnist``).
"""

__version__ = "0.1.0"
