"""Seeds: the one normalisation every op uses, and the trainer's per-step stream."""
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models.instrumented import InstrumentedTrainer, optimizer_seed
from tensorflow_kappa.quantization import FixedPoint, quantize_tensor, update_quantize_store
from tensorflow_kappa.quantization.seeds import SeedStream, op_seed

STOCHASTIC = FixedPoint(8, 4, rounding="stochastic")
NEAREST = FixedPoint(8, 4)
INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("seed", [
    (1, 2), [3, -4], np.array([5, 6]), np.array([5, 6], np.int32), (np.int64(7), 8),
    (-(2**63), INT64_MAX), tf.constant([9, 10]), tf.constant([9, 10], tf.int32),
    tf.Variable([11, 12], dtype=tf.int64),
])
def test_accepted_seeds_keep_their_values(seed):
    got = op_seed(seed, STOCHASTIC)
    assert got.dtype == tf.int64
    np.testing.assert_array_equal(got.numpy(), np.asarray(seed, np.int64))


@pytest.mark.parametrize("seed", [
    (2**70, 1), (2**63, 1), (1, -(2**63) - 1), (1.5, 2), (1.0, 2.0), (True, 1),
    (1, 2, 3), (1,), "12", 7, np.array([1.0, 2.0]), np.array([True, False]),
    np.array([2**63, 1], np.uint64), np.array([[1, 2]]), tf.constant([1.0, 2.0]),
    tf.constant([1, 2, 3]),
])
def test_bad_seeds_raise_value_error_naming_seed(seed):
    with pytest.raises(ValueError, match=r"^seed must be two integers"):
        op_seed(seed, STOCHASTIC)


@pytest.mark.parametrize("op", [
    lambda seed: quantize_tensor([0.3, 0.7], STOCHASTIC, seed=seed),
    lambda seed: update_quantize_store(tf.Variable([1.0, 2.0]), [0.1, 0.2], 0.5,
                                       "s8.4:stochastic", "s8.4", seed=seed),
], ids=["quantize_tensor", "update_quantize_store"])
@pytest.mark.parametrize("seed", [(2**70, 1), (0.5, 1), (1, 2, 3)])
def test_every_op_with_a_seed_checks_it_the_same_way(op, seed, implementation):
    with pytest.raises(ValueError, match=r"^seed must be two integers"):
        op(seed)


def test_none_is_zeros_without_stochastic_rounding_and_drawn_with_it():
    np.testing.assert_array_equal(op_seed(None, NEAREST, None).numpy(), [0, 0])
    tf.random.set_seed(5)
    a = op_seed(None, NEAREST, STOCHASTIC).numpy()
    tf.random.set_seed(5)
    b = op_seed(None, STOCHASTIC).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.all(a >= 0) and np.any(a != 0)


def test_stream_numbers_stochastic_calls_per_step():
    step = tf.Variable(tf.constant(0, tf.int64))
    stream = SeedStream(42, step)
    stream.start_step()
    assert stream.next(NEAREST) is None and stream.next(None) is None
    assert stream.next(STOCHASTIC).numpy().tolist() == [42, 1]
    assert stream.next(NEAREST, STOCHASTIC).numpy().tolist() == [42, 2]  # one per call
    step.assign(7)
    stream.start_step()
    assert stream.next(STOCHASTIC).numpy().tolist() == [42, 7 * SeedStream.SITES_PER_STEP + 1]
    assert stream.initial(3).numpy().tolist() == [42, -4]
    for _ in range(SeedStream.SITES_PER_STEP - 2):
        stream.next(STOCHASTIC)
    with pytest.raises(ValueError, match="stochastic quantizers in one step"):
        stream.next(STOCHASTIC)
    for bad in (2**63, 1.0, True):
        with pytest.raises(ValueError, match="run_seed must be an integer"):
            SeedStream(bad, step)


def test_trainer_rounds_storage_with_the_streams_initial_seeds(implementation):
    ds = TeacherStudentDataset(16, 3, 2, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[3], seed=11)
    before = [v.numpy() for v in model.model.trainable_variables]
    fmt = "s10.6:stochastic"
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(precision_dict={"*": fmt}))
    trainer.initialize()
    for i, (v, b) in enumerate(zip(model.model.trainable_variables, before)):
        # The optimizer rounds them, with its seed derived from the model's.
        want = quantize_tensor(b, fmt, ste=False, seed=(optimizer_seed(11), -1 - i)).numpy()
        np.testing.assert_array_equal(v.numpy(), want, err_msg=v.path)
