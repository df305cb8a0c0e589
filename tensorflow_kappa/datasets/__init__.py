"""Datasets for training experiments (a plain re-export list)."""
from tensorflow_kappa.datasets.arithmetic import (ARITHMETIC_SUITE, ArithmeticTask,
                                                  arithmetic_task)
from tensorflow_kappa.datasets.base import BaseDataset
from tensorflow_kappa.datasets.base import TeacherStudentDataset

__all__ = [
    "ARITHMETIC_SUITE",
    "ArithmeticTask",
    "arithmetic_task",
    "BaseDataset",
    "TeacherStudentDataset",
]
