"""The C++ sources of the streaming counters' compiled ops: ``unit_sums.cc``
(every site's per-unit sums of a step, in the counters' layout) and
``relu_grad_unit_sums.cc`` (a ReLU's gradient that takes its site's sums in
the same pass), built into one library.

It is built and loaded by :mod:`keras_deadrelu.native_unit_sums`;
``python -m keras_deadrelu.native`` builds it now and says whether it loads.
"""
