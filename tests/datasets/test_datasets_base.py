"""BaseDataset and TeacherStudentDataset."""
import numpy as np
import pytest

from tensorflow_kappa.datasets import BaseDataset, TeacherStudentDataset


def test_base_dataset_shapes_include_the_batch_dimension():
    ds = BaseDataset(np.arange(12).reshape(6, 2), np.zeros((6, 3)))
    assert ds.input_shape == (6, 2) and ds.output_shape == (6, 3) and len(ds) == 6
    assert ds.X.dtype == np.float32 and ds.Y.dtype == np.float32


@pytest.mark.parametrize("X, Y, match", [
    (np.zeros((5, 2)), np.zeros((4, 1)), "same number of rows"),
    (np.zeros(5), np.zeros((5, 1)), "batch dimension"),
])
def test_base_dataset_rejects_bad_shapes(X, Y, match):
    with pytest.raises(ValueError, match=match):
        BaseDataset(X, Y)


def test_teacher_student_targets_are_the_teacher_applied_to_the_inputs():
    ds = TeacherStudentDataset(200, 6, 3, seed=0)
    assert ds.A.shape == (6, 3) and ds.input_shape == (200, 6) and ds.output_shape == (200, 3)
    np.testing.assert_allclose(ds.X.astype(np.float64) @ ds.A.astype(np.float64), ds.Y,
                               rtol=1e-5, atol=1e-5)
    # Entries of A are N(0, 1/input_dim): unit-variance targets.
    assert 0.5 < ds.Y.var() < 1.5


def test_teacher_student_is_reproducible_and_noise_has_the_requested_scale():
    a, b = TeacherStudentDataset(4000, 5, 2, noise=0.3, seed=7), TeacherStudentDataset(
        4000, 5, 2, noise=0.3, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)
    residual = a.Y - a.X.astype(np.float64) @ a.A.astype(np.float64)
    assert residual.std() == pytest.approx(0.3, rel=0.05)
    assert not np.array_equal(TeacherStudentDataset(10, 5, 2, seed=8).X, a.X[:10])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0, input_dim=2, output_dim=1), "n must be"),
    (dict(n=5, input_dim=2.5, output_dim=1), "input_dim must be"),
    (dict(n=5, input_dim=2, output_dim=1, noise=-1.0), "noise must be"),
])
def test_teacher_student_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherStudentDataset(**kwargs)
