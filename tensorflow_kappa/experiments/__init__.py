"""What the ``kappa`` commands run, built on the library (nothing in the library imports it).

==========================  ===========================================================
``arithmetic``              ``kappa arithmetic``: a deep iNALU stack on the report's task
``nalm``                    ``kappa nalm-benchmark``: the single-module NALM benchmark
``ablation``                ``kappa ablation``: float vs fixed point x controller off/on
``op_bench``                ``kappa bench ops``: the custom ops, their twins, TF built-ins
``loop_controller_bench``   ``kappa bench loop-controller``: LoopController vs plain fit
``trainer_bench``           ``kappa bench trainer``: the instrumented trainer vs fit
``core_bench``              ``kappa bench core``: the NumPy binding vs the custom ops
``timing``                  the one timing harness and report format of every bench
``inspect_weights``         ``kappa inspect``: saved weights in fixed-point formats (no TF)
``reporting``               JSON records, numbers and text tables shared by the above
``resumable``               finished units kept on disk, interrupts, ``--resume``, estimates
==========================  ===========================================================

Import the module you need, e.g.
``from tensorflow_kappa.experiments.arithmetic import train_arithmetic``.
"""
