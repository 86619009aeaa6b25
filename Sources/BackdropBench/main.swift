import Torch
print("benchmarks: not yet written")
