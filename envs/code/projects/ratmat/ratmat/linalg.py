"""Gauss-Jordan elimination and what it gives: rref, rank, determinant, inverse, solve."""

from fractions import Fraction

from ratmat.matrix import Matrix, SingularMatrixError


def _find_pivot(rows, column, start):
    for r in range(start, len(rows)):
        if rows[r][column] != 0:
            return r
    return None


def rref(matrix):
    """The reduced row echelon form and the list of pivot columns."""
    rows = matrix.rows()
    n_rows, n_cols = matrix.shape
    pivots = []
    r = 0
    for c in range(n_cols):
        if r >= n_rows:
            break
        p = _find_pivot(rows, c, r)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        lead = rows[r][c]
        rows[r] = [x / lead for x in rows[r]]
        for i in range(n_rows):
            if i != r and rows[i][c] != 0:
                factor = rows[i][c]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[r])]
        pivots.append(c)
        r += 1
    return Matrix(rows), pivots


def rank(matrix):
    return len(rref(matrix)[1])


def determinant(matrix):
    """The determinant by elimination (exact); each row swap flips the sign."""
    if not matrix.is_square:
        raise ValueError("determinant needs a square matrix")
    rows = matrix.rows()
    n = len(rows)
    det = Fraction(1)
    for c in range(n):
        p = _find_pivot(rows, c, c)
        if p is None:
            return Fraction(0)
        if p != c:
            rows[c], rows[p] = rows[p], rows[c]
            det = -det
        det *= rows[c][c]
        for i in range(c + 1, n):
            factor = rows[i][c] / rows[c][c]
            rows[i] = [a - factor * b for a, b in zip(rows[i], rows[c])]
    return det


def inverse(matrix):
    """The inverse, from the rref of [A | I]; raises SingularMatrixError when there is none."""
    if not matrix.is_square:
        raise ValueError("inverse needs a square matrix")
    n = matrix.shape[0]
    identity = Matrix.identity(n).rows()
    augmented = Matrix([row + extra for row, extra in zip(matrix.rows(), identity)])
    reduced, pivots = rref(augmented)
    if pivots[:n] != list(range(n)):
        raise SingularMatrixError("matrix is singular")
    return Matrix([row[n:] for row in reduced.rows()])


def solve(matrix, rhs):
    """The unique x with A x = rhs (a list); raises SingularMatrixError otherwise."""
    n_rows, n_cols = matrix.shape
    if len(rhs) != n_rows:
        raise ValueError("right-hand side has the wrong length")
    augmented = Matrix([row + [b] for row, b in zip(matrix.rows(), rhs)])
    reduced, pivots = rref(augmented)
    if n_cols in pivots:
        raise SingularMatrixError("the system is inconsistent")
    if len(pivots) < n_cols:
        raise SingularMatrixError("the system has infinitely many solutions")
    return [reduced[i, n_cols] for i in range(n_cols)]
