"""The population trainer and its masked optimizer against independent single-member training.

The masked optimizer against Keras' own RMSprop and Adam, member by member; the
trainer (chunks, masking, redraws with and without fresh slots) against members
trained one by one with a Keras optimizer; and a member of the arithmetic job's
population against the same member trained in a population of its own."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.experiments.arithmetic_population import ArithmeticPopulation
from tensorflow_kappa.experiments.population import MaskedOptimizer, PopulationTrainer
from tensorflow_kappa.recipes import InaluRecipe

KERAS_RULES = {"rmsprop": lambda: keras.optimizers.RMSprop(0.01),
               "adam": lambda: keras.optimizers.Adam(0.01)}


@pytest.mark.parametrize("kind", sorted(KERAS_RULES))
def test_masked_optimizer_is_keras_bit_for_bit_and_leaves_masked_members_alone(kind):
    """Unmasked members step exactly (bit for bit) as Keras steps each member alone."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2, 1)).astype("float32")
    grads = [rng.normal(size=(3, 2, 1)).astype("float32") for _ in range(5)]
    masks = [[True, True, False], [True, False, False], [True, True, False],
             [False, True, False], [True, True, False]]
    opt = MaskedOptimizer(KERAS_RULES[kind]())
    value, slots = tf.constant(start), opt.slots(start)
    for g, mask in zip(grads, masks):
        value, slots = opt.update(value, tf.constant(g), slots, tf.constant(mask))
    np.testing.assert_array_equal(value.numpy()[2], start[2])  # never selected
    for s in slots:
        assert not np.any(s.numpy()[2])
    for member in (0, 1):
        single = keras.Variable(start[member])
        keras_opt = KERAS_RULES[kind]()
        for g, mask in zip(grads, masks):
            if mask[member]:
                keras_opt.apply([tf.constant(g[member])], [single])
        np.testing.assert_array_equal(value.numpy()[member], single.numpy())
    numpy_slots = tuple(s.numpy() for s in slots)
    opt.reset(numpy_slots, 0)
    assert all(not np.any(s[0]) and np.any(s[1]) for s in numpy_slots)


def test_masked_optimizer_takes_its_constants_from_keras_and_refuses_what_it_lacks():
    opt = MaskedOptimizer(keras.optimizers.RMSprop(0.05, rho=0.8, epsilon=1e-5))
    assert opt.constants == {"rho": 0.8, "epsilon": 1e-5}
    assert opt.learning_rate == pytest.approx(0.05)
    for bad in (keras.optimizers.SGD(0.1), keras.optimizers.RMSprop(0.1, momentum=0.9),
                keras.optimizers.RMSprop(0.1, centered=True),
                keras.optimizers.Adam(0.1, amsgrad=True), keras.optimizers.Adam(0.1, clipnorm=1.0),
                keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
                "rmsprop"):
        with pytest.raises(ValueError, match="optimizer"):
            MaskedOptimizer(bad)


class LinearPopulation(PopulationTrainer):
    """Members ``y = w x`` on one input, trained on their own two-row batches.

    With one input and two rows every sum has at most two terms, so the members'
    gradients are exact whatever order the stacked and the single computation sum
    in: the comparison with single-member Keras training below is bit for bit by
    construction and tests the trainer, not a summation order.  A member is redrawn
    (to ``10 * attempt + p``) while its last loss is above ``stuck_above``, at most
    once; it stops once its last loss is below ``done_below``.
    """

    def __init__(self, x, y, initial, stuck_above, done_below, reset_slots, steps=3):
        recipe = InaluRecipe(reinit_condition=lambda losses: bool(losses[-1] > stuck_above),
                             max_reinitializations=1, early_stopping_threshold=None)
        super().__init__(len(initial), recipe, MaskedOptimizer(keras.optimizers.RMSprop(0.05)),
                         steps, jit_compile=False, reset_slots_on_redraw=reset_slots)
        self.x, self.y, self.done_below = x, y, done_below
        self._start([[np.array([w], np.float32)] for w in initial])

    def _draw(self, p, attempt):
        return [np.array([10.0 * attempt + p], np.float32)]

    def _chunk_inputs(self, start):
        rows = slice(start, start + self.steps_per_chunk)
        return tf.constant(self.x[rows]), tf.constant(self.y[rows]), tf.constant(self.active)

    def _step(self, i, state, inputs):
        (w,), (slots,) = state
        x, y, active = inputs
        with tf.GradientTape() as tape:
            tape.watch(w)
            mse = tf.reduce_mean(tf.square(x[i] * w - y[i]), axis=1)
            total = tf.reduce_sum(mse)
        w, slots = self.optimizer.update(w, tape.gradient(total, w), slots, active)
        return ([w], [slots]), (mse,)

    def _not_stuck(self, p, losses):
        if losses[-1] < self.done_below:
            self.active[p] = False


def _single_member_runs(x, y, initial, stuck_above, done_below, reset_slots, chunks, steps=3):
    """Each member alone: a Keras variable and a Keras RMSprop, the same rules by hand."""
    out = []
    for p, w0 in enumerate(initial):
        w, opt = keras.Variable(np.array([w0], np.float32)), keras.optimizers.RMSprop(0.05)
        redraws = 0
        for chunk in range(chunks):
            for step in range(chunk * steps, (chunk + 1) * steps):
                value = tf.convert_to_tensor(w)
                with tf.GradientTape() as tape:
                    tape.watch(value)
                    loss = tf.reduce_mean(tf.square(x[step, p] * value - y[step, p]))
                opt.apply([tape.gradient(loss, value)], [w])
            if float(loss) > stuck_above and redraws < 1:
                redraws += 1
                w.assign(np.array([10.0 * redraws + p], np.float32))
                if reset_slots:
                    opt = keras.optimizers.RMSprop(0.05)
            elif float(loss) < done_below:
                break
        out.append((w.numpy(), redraws))
    return out


@pytest.mark.parametrize("reset_slots", [False, True])
def test_the_trainer_trains_each_member_as_keras_trains_it_alone(reset_slots):
    rng = np.random.default_rng(3)
    chunks, steps, members = 6, 3, 4
    x = rng.uniform(1, 2, (chunks * steps, members, 2)).astype("float32")
    y = (x * np.array([0.5, -1.0, 2.0, 1.5], np.float32)[None, :, None]).astype("float32")
    initial = [0.4, -0.9, 30.0, -3.0]  # member 2 starts far off: redrawn after chunk 1
    pop = LinearPopulation(x, y, initial, stuck_above=100.0, done_below=0.2,
                           reset_slots=reset_slots)
    assert pop.train(chunks) == chunks
    reference = _single_member_runs(x, y, initial, 100.0, 0.2, reset_slots, chunks)
    for p, (w, redraws) in enumerate(reference):
        np.testing.assert_array_equal(pop.member_weights(p)[0], w)
        assert pop.redraws[p] == redraws
    assert pop.redraws.tolist() == [0, 0, 1, 0]
    assert not pop.active[0] and not pop.active[1]  # stopped early, then left alone


def test_a_member_trains_as_in_a_population_of_its_own():
    """The arithmetic job's members are independent bit for bit: a seed's candidates in
    a two-seed population end where a population of that seed alone ends, through
    gate steps, regularisation steps and redraws."""
    recipe = InaluRecipe(candidates=2, reinit_min_steps=15, reinit_window=10,
                         reinit_loss_threshold=0.0, regularization_delay_epochs=0,
                         regularization_loss_threshold=1e9)
    both = ArithmeticPopulation("x1 * x2 + x3", [0, 1], recipe, layers=(2, 1), num_inputs=3,
                                n=640)
    both.run(3)
    alone = ArithmeticPopulation("x1 * x2 + x3", [1], recipe, layers=(2, 1), num_inputs=3,
                                 n=640)
    alone.run(3)
    assert both.redraws.tolist() == [1, 1, 1, 1] and alone.redraws.tolist() == [1, 1]
    assert all(any(e["regularization_started"]) for e in both.events)
    for p in (0, 1):
        for a, b in zip(both.member_weights(2 + p), alone.member_weights(p)):
            np.testing.assert_array_equal(a, b)
