"""Exact matrices over the rationals."""

from ratmat.linalg import determinant, inverse, rank, rref, solve
from ratmat.matrix import Matrix, SingularMatrixError

__all__ = ["Matrix", "SingularMatrixError", "determinant", "inverse", "rank", "rref", "solve"]
