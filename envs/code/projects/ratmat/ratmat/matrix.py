"""An immutable matrix of Fractions."""

from fractions import Fraction


class SingularMatrixError(ValueError):
    """The matrix has no inverse (or the system no unique solution)."""


class Matrix:
    def __init__(self, rows):
        rows = [[Fraction(x) for x in row] for row in rows]
        if not rows or not rows[0]:
            raise ValueError("a matrix needs at least one row and one column")
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise ValueError("all rows must have the same length")
        self._rows = tuple(tuple(row) for row in rows)

    @classmethod
    def identity(cls, n):
        return cls([[1 if i == j else 0 for j in range(n)] for i in range(n)])

    @classmethod
    def zeros(cls, n_rows, n_cols):
        return cls([[0] * n_cols for _ in range(n_rows)])

    @property
    def shape(self):
        return len(self._rows), len(self._rows[0])

    @property
    def is_square(self):
        rows, cols = self.shape
        return rows == cols

    def rows(self):
        return [list(row) for row in self._rows]

    def row(self, i):
        return list(self._rows[i])

    def column(self, j):
        return [row[j] for row in self._rows]

    def __getitem__(self, index):
        i, j = index
        return self._rows[i][j]

    def transpose(self):
        n_rows, n_cols = self.shape
        return Matrix([[self._rows[i][j] for i in range(n_rows)] for j in range(n_cols)])

    def trace(self):
        if not self.is_square:
            raise ValueError("trace needs a square matrix")
        return sum((self._rows[i][i] for i in range(self.shape[0])), Fraction(0))

    def _check_same_shape(self, other):
        if self.shape != other.shape:
            raise ValueError(f"shapes differ: {self.shape} and {other.shape}")

    def __add__(self, other):
        self._check_same_shape(other)
        return Matrix([[a + b for a, b in zip(r, s)] for r, s in zip(self._rows, other._rows)])

    def __sub__(self, other):
        self._check_same_shape(other)
        return Matrix([[a - b for a, b in zip(r, s)] for r, s in zip(self._rows, other._rows)])

    def scale(self, factor):
        factor = Fraction(factor)
        return Matrix([[factor * x for x in row] for row in self._rows])

    def __matmul__(self, other):
        n, m = self.shape
        m2, p = other.shape
        if m != m2:
            raise ValueError(f"cannot multiply {self.shape} by {other.shape}")
        return Matrix(
            [
                [sum((self._rows[i][k] * other._rows[k][j] for k in range(m)), Fraction(0)) for j in range(p)]
                for i in range(n)
            ]
        )

    def power(self, exponent):
        """The matrix to a non-negative integer power, by repeated squaring."""
        if not self.is_square:
            raise ValueError("power needs a square matrix")
        if exponent < 0:
            raise ValueError("exponent must be non-negative")
        result = Matrix.identity(self.shape[0])
        base = self
        while exponent > 0:
            if exponent % 2 == 1:
                result = result @ base
            base = base @ base
            exponent //= 2
        return result

    def __eq__(self, other):
        if not isinstance(other, Matrix):
            return NotImplemented
        return self._rows == other._rows

    def __hash__(self):
        return hash(self._rows)

    def __repr__(self):
        body = ", ".join("[" + ", ".join(str(x) for x in row) + "]" for row in self._rows)
        return f"Matrix([{body}])"
