"""The C++ source of the streaming counters' compiled op (``unit_sums.cc``).

It is built and loaded by :mod:`keras_deadrelu.native_unit_sums`;
``python -m keras_deadrelu.native`` builds it now and says whether it loads.
"""
