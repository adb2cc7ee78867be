"""Every tuning constant of the fast tier, in one place, each with the measurement that set it.

None of these changes a result beyond floating-point rounding; each only picks
how the same arithmetic is cut up. The figures behind them, with the machine they
were measured on, are in ``benchmarks/results/tuning.md``; a choice measured on
one CPU is a default, not a law, so re-run the named benchmark on yours.
"""

# Convolutions process the batch in chunks whose patch matrix (B*OH*OW, KH*KW*C)
# is about this many bytes: im2col writes it and the matrix product reads it while
# it is still in cache. Smaller chunks cost more Python calls and smaller products,
# larger ones spill out of cache. Set by the W2/W3/W4 step times at 1, 2, 4 and
# 8 MiB (benchmarks/results/tuning.md, "CHUNK_BYTES"); 2 MiB was fastest on W2
# and within 5% of the best on W3/W4.
CHUNK_BYTES = 2 << 20

# The planes route (``kernels/narrow_conv.py``) copies a chunk of images into zero-padded
# channel planes, input and output planes together about this many bytes, so that they stay
# in the core's L2 cache (512 KiB on Zen 2, 1-2 MiB on recent Intel) while every
# (filter, channel) pair streams over them (benchmarks/results/tuning.md, "Convolution routes").
PLANES_CHUNK_BYTES = 256 << 10
# The planner times the planes route for layers with at most this many channels and filters.
PLANES_MAX_CHANNELS = 16

# Multiply-adds below which a dense layer skips the scratch pool and the thread
# split: that bookkeeping made W1's step (a 1-10-10-1 network) 20% slower.
SMALL_DENSE_WORK = 1 << 16

# Multiply-adds from which a matrix product is split by rows over the threads once
# BLAS is single-threaded (``parallel.split_for_blas``).
BLAS_SPLIT_MIN_WORK = 1 << 20

# Elements from which NumPy-only work (bias adds, activations, the loss rows) is
# split over the threads (``parallel.split_large``): below it, handing the parts to
# threads costs more than it saves.
NUMPY_SPLIT_MIN_ELEMENTS = 1 << 16

# Weights from which an optimizer update is cut into flat halves on both threads:
# Adam on 512k weights 0.53 -> 0.34 ms (benchmarks/results/tuning.md, "ADAM_SPLIT").
OPTIMIZER_SPLIT_MIN_ELEMENTS = 1 << 18

# Results of this many bytes or more come from the workspace pool (workspace.empty):
# glibc's initial mmap threshold, from which a fresh array may get fresh pages that
# fault on first touch (W2: ~23 000 faults per epoch without the pool and without
# utils.tune_malloc, none with it; benchmarks/results/defaults.md).
POOL_MIN_BYTES = 128 << 10

# Multiply-adds of a recurrent layer's call (LSTM, GRU: N T (D + U) gates U) from
# which, with more than one thread, the batch is cut into row blocks that run the
# whole recurrence on their own thread (``fast/lstm.py``: split_rows). One LSTM
# forward + backward, split against one block: 0.48-0.74x up to 21M multiply-adds
# (the hand-off costs more than the second core gives back), 0.99x at 168M and
# 1.05x at 671M (W6's layers) on a machine loaded to 11 on 2 cores; the whole W6
# step 420 against 1300 ms (benchmarks/results/tuning.md, "RECURRENT_SPLIT_MIN_WORK").
RECURRENT_SPLIT_MIN_WORK = 1 << 25

# Channels (min(C, F)) from which a 3x3 stride-1 convolution takes the Winograd
# F(2x2, 3x3) route (``fast/winograd.py: applies``): below it the 16 products per
# chunk are too thin for BLAS and the tile transforms cost more than they save.
# Measured with ``python -m benchmarks.bench_winograd`` (benchmarks/results/tuning.md,
# "Winograd").
WINOGRAD_MIN_CHANNELS = 32

# The tile of that route's forward pass: 4 for F(4x4, 3x3) (36 products per 16
# outputs; route "winograd4"), 2 for F(2x2, 3x3) (16 per 4; "winograd"). F(4x4)
# does 44% fewer multiply-adds in its products, and with its transforms in the
# working precision its forward pass was faster than F(2x2) and im2col on every
# layer of 32 channels or more measured (benchmarks/results/tuning.md, "Winograd tile"); its float32 rounding bound is
# up to 36x larger (tests/test_winograd.py: test_growth_of_the_transforms).
WINOGRAD_FORWARD_TILE = 4

# The tile of the weight gradient's Winograd route on the same layers (``fast/conv.py:
# weight_grad_route``): F(4x4, 3x3) by the transpose of the forward pass, gy's tiles
# transformed by the written-out A (``kernels/winograd.py: grad_transform_f43_into``).
# It beat im2col on every layer measured from 32 channels, 1.02-1.42x (the "Winograd
# tile" table).
WINOGRAD_WEIGHT_GRAD_TILE = 4

# The tile of the input gradient's Winograd route on the same layers (``fast/conv.py:
# _backward_input_route``): F(4x4, 3x3) by the transpose of the forward pass (gy's tiles
# by A, products over the filters, then B gV B^T added back into x's tiles;
# ``fast/winograd.py: input_grad``). It beat im2col on every layer measured from 32
# channels, 1.2-1.5x, W2's "valid" layer included (benchmarks/results/tuning.md, "Winograd
# input gradient by the transposed forward pass"). With the weight gradient on the same
# tile, ``fast/winograd.py: backward`` transforms gy's tiles once for both.
WINOGRAD_INPUT_GRAD_TILE = 4

# The route planner (``planner.py``) keeps the rules above as its fallbacks, used
# wherever this machine has no plan, and times these candidates beside them: im2col
# chunks of CHUNK_BYTES times each factor (1, 4 and 8 MiB beside 2 MiB, the sizes of
# the "CHUNK_BYTES" table), and the direct loops for layers with at most this many
# channels or filters (wider, their KH*KW*C*F multiply-adds per pixel without BLAS
# cannot win, and timing them would cost more than the plan saves).
PLAN_CHUNK_FACTORS = (0.5, 2, 4)
PLAN_DIRECT_MAX_CHANNELS = 16
