"""Datasets for training experiments (a plain re-export list)."""
from tensorflow_kappa.datasets.base import BaseDataset
from tensorflow_kappa.datasets.base import TeacherStudentDataset

__all__ = [
    "BaseDataset",
    "TeacherStudentDataset",
]
