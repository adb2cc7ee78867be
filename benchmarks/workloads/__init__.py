"""One module per framework, each building every workload of ``benchmarks.specs`` the same way.

Each module has ``build(spec, x, y, variant) -> runner``; ``runner(epochs)`` trains
that many epochs over the fixed data set (shuffled each epoch) and returns the last
loss as a float.
"""
MODULES = {"numbanet": "benchmarks.workloads.numbanet_impl",
           "tf-fit": "benchmarks.workloads.tf_impl",
           "tf-function": "benchmarks.workloads.tf_impl",
           "torch": "benchmarks.workloads.torch_impl"}
