from fractions import Fraction

import pytest

from ratmat.matrix import Matrix


def test_rejects_ragged_rows():
    with pytest.raises(ValueError):
        Matrix([[1, 2], [3]])


def test_rejects_empty():
    with pytest.raises(ValueError):
        Matrix([])


def test_entries_are_fractions():
    m = Matrix([["1/2", 3]])
    assert m[0, 0] == Fraction(1, 2)
    assert isinstance(m[0, 1], Fraction)


def test_shape_and_square():
    assert Matrix([[1, 2, 3], [4, 5, 6]]).shape == (2, 3)
    assert not Matrix([[1, 2, 3], [4, 5, 6]]).is_square
    assert Matrix.identity(3).is_square


def test_identity_and_zeros():
    assert Matrix.identity(2) == Matrix([[1, 0], [0, 1]])
    assert Matrix.zeros(2, 3) == Matrix([[0, 0, 0], [0, 0, 0]])


def test_row_and_column():
    m = Matrix([[1, 2], [3, 4]])
    assert m.row(1) == [3, 4]
    assert m.column(0) == [1, 3]


def test_transpose():
    assert Matrix([[1, 2, 3], [4, 5, 6]]).transpose() == Matrix([[1, 4], [2, 5], [3, 6]])


def test_trace():
    assert Matrix([[1, 2], [3, 4]]).trace() == 5
    with pytest.raises(ValueError):
        Matrix([[1, 2]]).trace()


def test_add_and_sub():
    a = Matrix([[1, 2], [3, 4]])
    b = Matrix([[4, 3], [2, 1]])
    assert a + b == Matrix([[5, 5], [5, 5]])
    assert a - b == Matrix([[-3, -1], [1, 3]])


def test_add_shape_mismatch():
    with pytest.raises(ValueError):
        Matrix([[1, 2]]) + Matrix([[1], [2]])


def test_scale():
    assert Matrix([[1, 2]]).scale("1/2") == Matrix([["1/2", 1]])


def test_matmul():
    a = Matrix([[1, 2], [3, 4]])
    b = Matrix([[0, 1], [1, 0]])
    assert a @ b == Matrix([[2, 1], [4, 3]])
    assert b @ a == Matrix([[3, 4], [1, 2]])


def test_matmul_rectangular():
    a = Matrix([[1, 2, 3]])
    b = Matrix([[1], [1], [2]])
    assert a @ b == Matrix([[9]])
    assert (b @ a).shape == (3, 3)


def test_matmul_shape_mismatch():
    with pytest.raises(ValueError):
        Matrix([[1, 2]]) @ Matrix([[1, 2]])


def test_power():
    fib = Matrix([[1, 1], [1, 0]])
    assert fib.power(10) == Matrix([[89, 55], [55, 34]])
    assert fib.power(0) == Matrix.identity(2)
    assert fib.power(1) == fib


def test_power_rejects_negative():
    with pytest.raises(ValueError):
        Matrix.identity(2).power(-1)


def test_hash_and_repr():
    assert hash(Matrix([[1, 2]])) == hash(Matrix([[1, 2]]))
    assert repr(Matrix([["1/2", 2]])) == "Matrix([[1/2, 2]])"
