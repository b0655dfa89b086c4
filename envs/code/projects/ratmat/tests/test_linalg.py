from fractions import Fraction

import pytest

from ratmat.linalg import determinant, inverse, rank, rref, solve
from ratmat.matrix import Matrix, SingularMatrixError


def test_rref():
    reduced, pivots = rref(Matrix([[1, 2, 3], [2, 4, 7]]))
    assert reduced == Matrix([[1, 2, 0], [0, 0, 1]])
    assert pivots == [0, 2]


def test_rref_needs_row_swap():
    reduced, pivots = rref(Matrix([[0, 1], [1, 0]]))
    assert reduced == Matrix.identity(2)
    assert pivots == [0, 1]


def test_rank():
    assert rank(Matrix([[1, 2], [2, 4]])) == 1
    assert rank(Matrix([[1, 2], [3, 4]])) == 2
    assert rank(Matrix([[0, 0], [0, 0]])) == 0
    assert rank(Matrix([[1, 2, 3], [4, 5, 6], [7, 8, 9]])) == 2


def test_determinant():
    assert determinant(Matrix([[1, 2], [3, 4]])) == -2
    assert determinant(Matrix([[2, 0, 0], [0, 3, 0], [0, 0, 4]])) == 24


def test_determinant_with_swap():
    assert determinant(Matrix([[0, 1], [1, 0]])) == -1
    assert determinant(Matrix([[0, 2, 1], [1, 1, 1], [2, 1, 0]])) == 3


def test_determinant_singular():
    assert determinant(Matrix([[1, 2], [2, 4]])) == 0


def test_determinant_fractions():
    assert determinant(Matrix([["1/2", "1/3"], ["1/4", "1/5"]])) == Fraction(1, 60)


def test_determinant_not_square():
    with pytest.raises(ValueError):
        determinant(Matrix([[1, 2]]))


def test_inverse():
    a = Matrix([[4, 7], [2, 6]])
    inv = inverse(a)
    assert inv == Matrix([["3/5", "-7/10"], ["-1/5", "2/5"]])
    assert a @ inv == Matrix.identity(2)


def test_inverse_3x3():
    a = Matrix([[2, 0, 1], [1, 1, 0], [0, 3, 1]])
    assert inverse(a) @ a == Matrix.identity(3)


def test_inverse_singular():
    with pytest.raises(SingularMatrixError):
        inverse(Matrix([[1, 2], [2, 4]]))


def test_solve():
    assert solve(Matrix([[2, 1], [1, 3]]), [3, 5]) == [Fraction(4, 5), Fraction(7, 5)]


def test_solve_3x3():
    a = Matrix([[1, 1, 1], [0, 2, 5], [2, 5, -1]])
    assert solve(a, [6, -4, 27]) == [5, 3, -2]


def test_solve_inconsistent():
    with pytest.raises(SingularMatrixError, match="inconsistent"):
        solve(Matrix([[1, 1], [1, 1]]), [1, 2])


def test_solve_underdetermined():
    with pytest.raises(SingularMatrixError, match="infinitely"):
        solve(Matrix([[1, 1], [2, 2]]), [1, 2])


def test_solve_wrong_rhs_length():
    with pytest.raises(ValueError):
        solve(Matrix.identity(2), [1])
