"""The cost of each ranker inside SpearmanLoss (DESIGN §9.2).

Times the forward and backward pass of ``SpearmanLoss(ranker=...)`` on 64
lists of n scores, n in {16, 100, 1000, 10000}, eagerly, in ``tf.function``
and with XLA, against the exact floor (the loss's forward pass with exact
ranks) in the same run, with the peak memory of each measurement. Prints
the Markdown table of the README's "Speed" section. The work is done by
`keras_sodeep.benchmarking`; this script is ``keras-sodeep bench`` and
takes the same options.

```
python benchmarks/speed.py --untrained gru      # the README table
python benchmarks/speed.py --sizes 16,100 --modes xla   # a quick look
```
"""

import sys

from keras_sodeep.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
