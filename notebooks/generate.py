"""Writes the notebooks of this folder (outputs stripped) with nbformat.

    python notebooks/generate.py

Edit the cells here and run it again; the .ipynb files are committed.
Every notebook reads ``KERAS_SODEEP_FAST=1`` (the test suite sets it) to
shrink its epochs and sizes, and asserts its key result.
"""

import os
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = "keras-sodeep/keras-sodeep"


def badge(filename):
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/"
        f"colab-badge.svg)](https://colab.research.google.com/github/{REPO}/"
        f"blob/main/notebooks/{filename})"
    )


INSTALL = """\
# Installs keras_sodeep when it is not importable yet (e.g. on Colab).
# It is not on PyPI: build a wheel in a checkout of the repository with
#     python -m pip wheel --no-deps -w dist .
# and put dist/keras_sodeep-*.whl beside this notebook (on Colab, upload it
# to the session's files), or set KERAS_SODEEP_SOURCE to the path of a
# checkout or of a wheel.
import glob
import importlib
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("keras_sodeep") is None:
    wheels = sorted(
        glob.glob("keras_sodeep-*.whl") + glob.glob("dist/keras_sodeep-*.whl")
    )
    source = os.environ.get("KERAS_SODEEP_SOURCE") or (
        wheels[-1] if wheels else None
    )
    if source is None:
        raise RuntimeError(
            "keras_sodeep is not installed, and there is no "
            f"keras_sodeep-*.whl in {os.getcwd()}: upload the wheel here, "
            "or set KERAS_SODEEP_SOURCE to a checkout or a wheel."
        )
    pip = [sys.executable, "-m", "pip", "install", "-q", source]
    subprocess.check_call(pip)
    importlib.invalidate_caches()"""

SETUP = """\
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# KERAS_SODEEP_FAST=1: a quick run with fewer epochs and smaller data.
FAST = os.environ.get("KERAS_SODEEP_FAST", "0") == "1"

import matplotlib

if FAST or "MPLBACKEND" in os.environ:
    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np
import keras

import keras_sodeep

keras.utils.set_random_seed(0)
print("keras", keras.__version__, "| backend", keras.backend.backend(),
      "| keras_sodeep", keras_sodeep.__version__, "| FAST =", FAST)"""


def cells(*items):
    out = []
    for item in items:
        kind, text = item
        text = textwrap.dedent(text).strip("\n")
        if kind == "md":
            out.append(new_markdown_cell(text))
        else:
            out.append(new_code_cell(text))
    return out


def md(text):
    return ("md", text)


def code(text):
    return ("code", text)


def header(filename, title, intro):
    return [
        md(f"{badge(filename)}\n\n# {title}\n\n{textwrap.dedent(intro)}"),
        code(INSTALL),
        code(SETUP),
    ]


# -- 01 ---------------------------------------------------------------------

QUICKSTART = header(
    "01_quickstart.ipynb",
    "keras_sodeep quickstart: a Spearman loss in ten lines",
    """
    SoDeep (Engilberge et al., CVPR 2019) makes rank metrics trainable: a
    differentiable *ranker* replaces the rank function inside the loss.
    Here a small regressor learns a target that only matters through its
    order, with `keras_sodeep.SpearmanLoss` and the exact metric
    `keras_sodeep.metrics.SpearmanCorrelation`.
    """,
) + [
    md(
        """
        ## Ranks, exact and differentiable

        Ranks are descending and 1-based; ties share the average position.
        `SigmoidRanker` (the paper's handcrafted sorter) and
        `NeuralSortRanker` approach the exact ranks as their temperature
        goes to 0, and pass gradients.
        """
    ),
    code(
        """
        scores = np.array([0.3, 2.0, -1.0, 0.3], "float32")
        print("exact      ", np.asarray(keras_sodeep.exact_rank(scores)))
        print("sigmoid    ",
              np.asarray(keras_sodeep.SigmoidRanker(0.1)(scores)).round(3))
        print("neuralsort ",
              np.asarray(keras_sodeep.NeuralSortRanker(0.1)(scores)).round(3))
        """
    ),
    md("## The model, in ten lines"),
    code(
        """
        rng = np.random.default_rng(0)
        x = rng.normal(size=(2048, 8)).astype("float32")
        y = np.exp(2 * np.tanh(x @ rng.normal(size=8))).astype("float32")
        model = keras.Sequential([keras.Input((8,)),
                                  keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras_sodeep.SpearmanLoss(),
                      metrics=[keras_sodeep.metrics.SpearmanCorrelation()])
        before = model.evaluate(x[1536:], y[1536:], verbose=0, return_dict=True)
        history = model.fit(x[:1536], y[:1536], batch_size=64,
                            epochs=3 if FAST else 10, verbose=0)
        after = model.evaluate(x[1536:], y[1536:], verbose=0, return_dict=True)
        print(f"held-out Spearman: {before['spearman']:.3f} before, "
              f"{after['spearman']:.3f} after training")
        """
    ),
    code(
        """
        # The key result: training on ranks raises the held-out Spearman.
        assert after["spearman"] > before["spearman"] + 0.1, (before, after)
        assert after["spearman"] > 0.8, after
        """
    ),
    code(
        """
        plt.figure(figsize=(4, 3))
        plt.plot(history.history["loss"], marker="o")
        plt.xlabel("epoch")
        plt.ylabel("SpearmanLoss")
        plt.title("training loss")
        plt.tight_layout()
        plt.show()
        """
    ),
]

# -- 02 ---------------------------------------------------------------------

SORTER = header(
    "02_train_and_evaluate_a_sorter.ipynb",
    "Train and evaluate a sorter",
    """
    A *sorter* is a small network that learns the rank function on
    synthetic lists (the paper's mix of ten generators). Here a
    length-generic `GRUSorter` is trained with
    `keras_sodeep.training.train_sorter` and measured with
    `evaluate_ranker`, the paper's Table 1 protocol (L1 = mean
    |r̂/n − r/n|), against the untrained sorter and the handcrafted
    `SigmoidRanker`.
    """,
) + [
    code(
        """
        from keras_sodeep.synthetic import evaluation_lists
        from keras_sodeep.training import evaluate_ranker, train_sorter

        STEPS = 150 if FAST else 3000
        SEQ_LEN = 32 if FAST else 100
        EVAL_LISTS = 200 if FAST else 2000

        # The paper's form (spread_inputs=False) learns the ranks from
        # scratch; by default a sorter starts from an evenly spread estimate
        # of them and learns a correction (see the README).
        sorter = keras_sodeep.GRUSorter(units=24, num_layers=1,
                                        context_units=16, spread_inputs=False)
        sorter(np.zeros((1, SEQ_LEN), "float32"))  # build
        untrained = evaluate_ranker(sorter, seq_len=SEQ_LEN,
                                    num_lists=EVAL_LISTS, lengths=())
        print("untrained L1", round(untrained["l1"], 4))
        """
    ),
    md(
        """
        `train_sorter` fits the sorter to the exact normalized ranks of
        synthetic lists; with `output_dir=...` it also checkpoints (a killed
        run resumes) and exports a preset folder that
        `keras_sodeep.pretrained(path)` loads.
        """
    ),
    code(
        """
        sorter, metadata = train_sorter(
            sorter, seq_len=(8, SEQ_LEN), steps=STEPS, batch_size=128,
            learning_rate=3e-3, eval_lists=0, verbose=0)
        trained = evaluate_ranker(sorter, seq_len=SEQ_LEN,
                                  num_lists=EVAL_LISTS, lengths=())
        handcrafted = evaluate_ranker(keras_sodeep.SigmoidRanker(0.1),
                                      seq_len=SEQ_LEN, num_lists=EVAL_LISTS,
                                      lengths=())
        for name, figures in [("untrained GRU", untrained),
                              ("trained GRU", trained),
                              ("SigmoidRanker(0.1)", handcrafted)]:
            print(f"{name:<20} L1 {figures['l1']:.4f}  "
                  f"Spearman {figures['spearman']:.4f}  "
                  f"L1 on 1000x+50 {figures['l1_scaled_up']:.4f}")
        """
    ),
    code(
        """
        # The key result: training brings the sorter much closer to the
        # exact ranks than it started, and it ignores the scale of the list.
        assert trained["l1"] < 0.5 * untrained["l1"], (trained, untrained)
        assert trained["spearman"] > untrained["spearman"]
        assert abs(trained["l1_scaled_up"] - trained["l1"]) < 1e-3
        """
    ),
    md("## Predicted against true ranks, and the error along the list"),
    code(
        """
        scores, true = evaluation_lists(num_lists=EVAL_LISTS, seq_len=SEQ_LEN)
        predicted = np.asarray(sorter(scores))
        sigmoid = np.asarray(keras_sodeep.SigmoidRanker(0.1)(scores)) / SEQ_LEN

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for lst in range(3):
            axes[0].scatter(SEQ_LEN * true[lst], SEQ_LEN * predicted[lst],
                            s=8, label=f"list {lst}")
        axes[0].plot([1, SEQ_LEN], [1, SEQ_LEN], "k--", lw=1)
        axes[0].set(xlabel="true rank", ylabel="predicted rank",
                    title="trained GRU sorter")
        axes[0].legend()

        # Mean absolute error (in rank positions) by true rank.
        positions = np.rint(SEQ_LEN * true).astype(int) - 1
        for name, pred in [("trained GRU", predicted),
                           ("SigmoidRanker(0.1)", sigmoid)]:
            err = SEQ_LEN * np.abs(pred - true)
            by_rank = (np.bincount(positions.ravel(), err.ravel(), SEQ_LEN)
                       / np.maximum(np.bincount(positions.ravel(),
                                                minlength=SEQ_LEN), 1))
            axes[1].plot(np.arange(1, SEQ_LEN + 1), by_rank, label=name)
        axes[1].set(xlabel="true rank", ylabel="mean |error| (positions)",
                    title="error along the list")
        axes[1].legend()
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        The trained sorter can stand in for the rank function inside any
        loss: `keras_sodeep.SpearmanLoss(ranker=sorter)` wraps it in a
        frozen `SorterRanker`.
        """
    ),
    code(
        """
        loss = keras_sodeep.SpearmanLoss(ranker=sorter)
        y_true = np.array([1.0, 2.0, 3.0, 4.0], "float32")
        good = float(loss(y_true, np.array([0.1, 0.2, 0.3, 0.4], "float32")))
        bad = float(loss(y_true, np.array([0.4, 0.3, 0.2, 0.1], "float32")))
        print(f"loss of the right order {good:.4f}, of the reversed {bad:.4f}")
        assert good < bad
        """
    ),
    md(
        """
        ## Pretrained sorters

        Training to the paper's fidelity takes hours; the package ships
        trained presets. `keras_sodeep.list_presets()` lists them with their
        Table 1 figures, `keras_sodeep.pretrained(name)` loads one (from the
        package, nothing is downloaded), and a preset name works directly
        as a loss's ranker: `keras_sodeep.SpearmanLoss(ranker="histogram")`.
        """
    ),
    code(
        """
        for name, meta in keras_sodeep.list_presets().items():
            print(f"{name:<10} {meta['architecture']:<16} "
                  f"seq_len={meta['seq_len']}  L1 {meta['fidelity']['l1']:.4f}")

        handcrafted_100 = evaluate_ranker(keras_sodeep.SigmoidRanker(0.1),
                                          seq_len=100, num_lists=EVAL_LISTS,
                                          lengths=())
        for name in keras_sodeep.list_presets():
            figures = evaluate_ranker(keras_sodeep.pretrained(name),
                                      seq_len=100, num_lists=EVAL_LISTS,
                                      lengths=())
            print(f"{name:<10} L1 {figures['l1']:.4f} on {EVAL_LISTS} lists "
                  f"(SigmoidRanker(0.1): {handcrafted_100['l1']:.4f})")
            # Every preset ranks closer to the truth than the handcrafted one.
            assert figures["l1"] < handcrafted_100["l1"], (name, figures)
        """
    ),
]

# -- 03 ---------------------------------------------------------------------

REGRESSION = header(
    "03_spearman_regression.ipynb",
    "Spearman regression: SpearmanLoss against MSE",
    """
    The paper's first task (memorability) asks for a score whose *order*
    matches human ratings. A small version on data bundled with
    scikit-learn: the `load_diabetes` regression target, a small MLP, and
    the held-out Spearman correlation, with MSE, with `SpearmanLoss()` (its
    default: the learned `histogram-small` sorter with soft outputs,
    `"histogram-small-smooth:0.6"`), with `SpearmanLoss` over the
    handcrafted
    `SigmoidRanker` and over `NeuralSortRanker`.
    """,
) + [
    code(
        """
        from scipy.stats import spearmanr
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(y))
        split = int(0.7 * len(y))
        train, test = order[:split], order[split:]
        x = ((x - x[train].mean(0)) / x[train].std(0)).astype("float32")
        y = ((y - y[train].mean()) / y[train].std()).astype("float32")
        x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
        EPOCHS = 15 if FAST else 60
        print(x_train.shape, x_test.shape)
        """
    ),
    code(
        """
        def make_model(seed=0):
            keras.utils.set_random_seed(seed)
            return keras.Sequential([keras.Input((x.shape[1],)),
                                     keras.layers.Dense(32, activation="relu"),
                                     keras.layers.Dense(1)])

        def held_out_spearman(model):
            return spearmanr(model.predict(x_test, verbose=0)[:, 0],
                             y_test).statistic

        untrained = held_out_spearman(make_model())
        losses = {
            "MSE": "mse",
            "SpearmanLoss (SoDeep default)": keras_sodeep.SpearmanLoss(),
            "SpearmanLoss (sigmoid)": keras_sodeep.SpearmanLoss(
                ranker="sigmoid:0.1"),
            "SpearmanLoss (NeuralSort)": keras_sodeep.SpearmanLoss(
                ranker=keras_sodeep.NeuralSortRanker(1.0)),
        }
        models, results = {}, {}
        for name, loss in losses.items():
            model = make_model()
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss,
                          metrics=[keras_sodeep.metrics.SpearmanCorrelation()])
            model.fit(x_train, y_train, batch_size=64, epochs=EPOCHS,
                      verbose=0)
            models[name], results[name] = model, held_out_spearman(model)
        print(f"untrained                  Spearman {untrained:.3f}")
        for name, rho in results.items():
            print(f"{name:<26} Spearman {rho:.3f}")
        """
    ),
    code(
        """
        # The key result: the Spearman-trained model orders the held-out
        # patients far better than the untrained one. (Against MSE, see the
        # benchmark in the README: on this data the two are close.)
        for name in ("SpearmanLoss (SoDeep default)", "SpearmanLoss (sigmoid)"):
            assert results[name] > untrained + 0.2, results
            assert results[name] > 0.5, results
        # The in-graph metric agrees with scipy on the same data.
        metric = models["MSE"].evaluate(x_test, y_test, verbose=0,
                                        return_dict=True)["spearman"]
        assert abs(metric - results["MSE"]) < 1e-4, (metric, results["MSE"])
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.5))
        for ax, (name, model) in zip(axes, models.items()):
            pred = model.predict(x_test, verbose=0)[:, 0]
            ax.scatter(y_test, pred, s=8)
            ax.set(title=f"{name}\\nρ = {results[name]:.3f}",
                   xlabel="target (standardized)", ylabel="prediction")
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        A rank loss only constrains the order of the predictions, not their
        scale: the SpearmanLoss models' outputs are not on the scale of the
        target. Add `l1_weight=...` to `SpearmanLoss` to keep them close.
        """
    ),
]

# -- 04 ---------------------------------------------------------------------

MULTILABEL = header(
    "04_multilabel_map.ipynb",
    "Multi-label classification: MeanAveragePrecisionLoss",
    """
    The paper's second task trains a multi-label classifier (VOC) on a
    differentiable mean Average Precision. A small offline version: mosaics
    of 2 x 2 `load_digits` images (a cell is empty with probability 1/2),
    labelled with the digits present. Each class column of a batch is a
    list ranked by the loss (`axis=0`); the metric is the exact
    `keras_sodeep.metrics.MeanAveragePrecision` (sklearn's macro AP).
    Baseline: binary cross-entropy.
    """,
) + [
    code(
        """
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype("float32") / 16.0

        def mosaics(num, seed, grid=2, empty=0.5):
            rng = np.random.default_rng(seed)
            x = np.zeros((num, 8 * grid, 8 * grid), "float32")
            y = np.zeros((num, 10), "float32")
            for i in range(num):
                for row in range(grid):
                    for col in range(grid):
                        if rng.random() < empty:
                            continue
                        j = rng.integers(len(images))
                        r, c = 8 * row, 8 * col
                        x[i, r:r + 8, c:c + 8] = images[j]
                        y[i, digits.target[j]] = 1.0
            return x, y

        NUM_TRAIN = 800 if FAST else 2000
        EPOCHS = 4 if FAST else 15
        x_train, y_train = mosaics(NUM_TRAIN, seed=0)
        x_test, y_test = mosaics(1000, seed=1)

        fig, axes = plt.subplots(1, 6, figsize=(10, 2))
        for ax, img, lab in zip(axes, x_train, y_train):
            ax.imshow(img, cmap="gray_r")
            ax.set_title(str(np.flatnonzero(lab).tolist()))
            ax.axis("off")
        plt.show()
        """
    ),
    code(
        """
        def make_model(seed=0):
            keras.utils.set_random_seed(seed)
            return keras.Sequential([keras.Input((16, 16)),
                                     keras.layers.Flatten(),
                                     keras.layers.Dense(64, activation="relu"),
                                     keras.layers.Dense(10)])

        def test_map(model):
            metric = keras_sodeep.metrics.MeanAveragePrecision()
            metric.update_state(y_test, model.predict(x_test, verbose=0))
            return float(metric.result())

        untrained = test_map(make_model())
        losses = {
            "binary cross-entropy":
                keras.losses.BinaryCrossentropy(from_logits=True),
            "MAP loss (SoDeep default)":
                keras_sodeep.MeanAveragePrecisionLoss(),
            "MAP loss (sigmoid)": keras_sodeep.MeanAveragePrecisionLoss(
                ranker="sigmoid:0.1"),
            "MAP loss (NeuralSort)": keras_sodeep.MeanAveragePrecisionLoss(
                ranker=keras_sodeep.NeuralSortRanker(1.0)),
        }
        histories, results = {}, {}
        for name, loss in losses.items():
            model = make_model()
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss,
                          metrics=[keras_sodeep.metrics.MeanAveragePrecision()])
            histories[name] = model.fit(
                x_train, y_train, batch_size=64, epochs=EPOCHS, verbose=0,
                validation_data=(x_test, y_test))
            results[name] = test_map(model)
        print(f"untrained               mAP {untrained:.3f}")
        for name, value in results.items():
            print(f"{name:<23} mAP {value:.3f}")
        """
    ),
    code(
        """
        from sklearn.metrics import average_precision_score

        # The key result: training on the mAP loss lifts the held-out mAP.
        assert results["MAP loss (sigmoid)"] > untrained + 0.3, results
        assert results["MAP loss (sigmoid)"] > 0.7, results
        assert results["MAP loss (SoDeep default)"] > untrained + 0.3, results
        # The metric is sklearn's macro average precision.
        model = make_model()
        scores = model.predict(x_test, verbose=0)
        reference = average_precision_score(y_test, scores, average="macro")
        assert abs(test_map(model) - reference) < 1e-4
        """
    ),
    code(
        """
        plt.figure(figsize=(5, 3.5))
        for name, history in histories.items():
            plt.plot(history.history["val_map"], marker="o", label=name)
        plt.xlabel("epoch")
        plt.ylabel("held-out mAP")
        plt.legend()
        plt.tight_layout()
        plt.show()
        """
    ),
]

# -- 05 ---------------------------------------------------------------------

RETRIEVAL = header(
    "05_retrieval.ipynb",
    "Open-set retrieval: RecallAtKLoss, RankTripletLoss, RankedListLoss, "
    "RS@k, SupAP",
    """
    The paper's third task learns embeddings for cross-modal retrieval
    with rank losses. A small offline version: embeddings of `load_digits`
    images trained on the digits 0-4 only, then each image of the unseen
    digits 5-9 queries the others (`keras_sodeep.retrieval.recall_at_k`).
    `RecallAtKLoss` and `RankTripletLoss` take the embeddings of a batch
    and its integer labels directly; the baseline is a batch-hard triplet
    loss on cosine similarity.
    """,
) + [
    code(
        """
        from sklearn.datasets import load_digits
        from keras import ops
        from keras_sodeep.retrieval import recall_at_k

        digits = load_digits()
        x_all = (digits.data / 16.0).astype("float32")
        y_all = digits.target
        seen = y_all < 5
        x_train, y_train = x_all[seen], y_all[seen]
        x_test, y_test = x_all[~seen], y_all[~seen]
        EPOCHS = 10 if FAST else 20
        # Small on purpose: with 16 dimensions, raw pixels through an
        # untrained network already retrieve the unseen digits at R@1 ~0.93.
        EMBEDDING_DIM = 8
        print("train", x_train.shape, "unseen classes", x_test.shape)
        """
    ),
    code(
        """
        class BatchHardTripletLoss(keras.losses.Loss):
            \"\"\"Baseline: batch-hard triplet loss on cosine similarity.\"\"\"

            def __init__(self, margin=0.2, name="batch_hard_triplet"):
                super().__init__(name=name)
                self.margin = margin

            def call(self, y_true, y_pred):
                labels = ops.reshape(y_true, (-1,))
                unit = y_pred / ops.maximum(
                    ops.sqrt(ops.sum(y_pred ** 2, -1, keepdims=True)), 1e-12)
                sim = unit @ ops.transpose(unit)
                same = ops.equal(labels[:, None], labels[None, :])
                eye = ops.cast(ops.eye(ops.shape(sim)[0]), "bool")
                positive = ops.logical_and(same, ops.logical_not(eye))
                hardest_pos = ops.min(ops.where(positive, sim, 2.0), -1)
                hardest_neg = ops.max(ops.where(same, -2.0, sim), -1)
                return ops.relu(self.margin - hardest_pos + hardest_neg)

        def make_model(seed=0):
            keras.utils.set_random_seed(seed)
            return keras.Sequential([keras.Input((64,)),
                                     keras.layers.Dense(64, activation="relu"),
                                     keras.layers.Dense(EMBEDDING_DIM)])

        def unseen_recall(model, k=(1, 5, 10)):
            return recall_at_k(model.predict(x_test, verbose=0),
                               query_labels=y_test, k=k)

        untrained = unseen_recall(make_model())
        losses = {
            "batch-hard triplet": BatchHardTripletLoss(),
            "RecallAtKLoss (sigmoid)": keras_sodeep.RecallAtKLoss(),
            "RankTripletLoss (sigmoid)": keras_sodeep.RankTripletLoss(),
        }
        models, results = {}, {}
        for name, loss in losses.items():
            model = make_model()
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
            model.fit(x_train, y_train, batch_size=64, epochs=EPOCHS,
                      shuffle=True, verbose=0)
            models[name], results[name] = model, unseen_recall(model)
        print("unseen digits 5-9, Recall@1 / @5 / @10")
        print(f"{'untrained':<26}", [round(v, 3) for v in untrained.values()])
        for name, recalls in results.items():
            print(f"{name:<26}", [round(v, 3) for v in recalls.values()])
        """
    ),
    code(
        """
        # The key result: embeddings trained with the Recall@k loss on the
        # digits 0-4 retrieve the unseen digits 5-9 better than untrained ones.
        assert results["RecallAtKLoss (sigmoid)"][1] > untrained[1] + 0.02, (
            results, untrained)
        """
    ),
    code(
        """
        # Unseen digits in the 2-D PCA of the embeddings (unit vectors).
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, name in zip(axes, ["batch-hard triplet",
                                   "RecallAtKLoss (sigmoid)"]):
            emb = models[name].predict(x_test, verbose=0)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            emb -= emb.mean(0)
            _, _, vt = np.linalg.svd(emb, full_matrices=False)
            xy = emb @ vt[:2].T
            points = ax.scatter(xy[:, 0], xy[:, 1], c=y_test, cmap="tab10",
                                s=6, vmin=0, vmax=9)
            ax.set_title(f"{name}: R@1 = {results[name][1]:.3f}")
        fig.colorbar(points, ax=axes, label="digit")
        plt.show()
        """
    ),
    md(
        """
        ## Ranked List Loss, RS@k with similarity mixup, large batches

        Two losses of the neighbouring papers on the same task:
        `RankedListLoss` (Wang et al. 2019: positives inside a
        sphere, weighted negatives beyond a boundary) and
        `RecallAtKSurrogateLoss` (RS@k, Patel et al. 2022), here with
        similarity mixup (`simix=True`: one mixed embedding per same-class
        pair of the batch joins it as query and gallery item, seeded).
        RS@k takes any ranker, a learned sorter too. The paper trains RS@k
        with very large batches: `ChunkedEmbeddingModel` embeds a batch in
        chunks and gives the one-pass gradient with one chunk's
        activations; here batches of 256 in chunks of 64.
        """
    ),
    code(
        """
        from keras_sodeep.training import ChunkedEmbeddingModel

        more = {
            "RankedListLoss": (keras_sodeep.RankedListLoss(), 64),
            "RS@k + SiMix": (keras_sodeep.RecallAtKSurrogateLoss(
                simix=True, seed=0), 64),
            "RS@k, histogram sorter": (keras_sodeep.RecallAtKSurrogateLoss(
                ranker="histogram"), 64),
            "RS@k, batch 256 in chunks": (
                keras_sodeep.RecallAtKSurrogateLoss(), 256),
        }
        for name, (loss, batch_size) in more.items():
            net = make_model()
            model = (ChunkedEmbeddingModel(net, chunk_size=64)
                     if batch_size > 64 else net)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
            # Large batches take fewer steps an epoch: about as many steps.
            epochs = EPOCHS * (3 if batch_size > 64 else 1)
            model.fit(x_train, y_train, batch_size=batch_size,
                      epochs=epochs, shuffle=True, verbose=0)
            results[name] = unseen_recall(net)
        print("unseen digits 5-9, Recall@1 / @5 / @10")
        for name, recalls in results.items():
            print(f"{name:<26}", [round(v, 3) for v in recalls.values()])
        """
    ),
    code(
        """
        # Each loss of this section trains embeddings that retrieve the
        # unseen digits better than an untrained network does.
        for name in more:
            assert results[name][1] > untrained[1], (name, results[name])
        """
    ),
    md(
        """
        ## SupAP, ROADMAP and a cross-batch memory

        The SupRank / ROADMAP losses (Ramzi et al., NeurIPS 2021, TPAMI
        2023) rank with their own surrogate: exact steps among the
        positives, an upper bound among the negatives whose slope never
        vanishes. `SupAPLoss` is one minus AP on that rank, `ROADMAPLoss`
        adds a calibration term on the similarities, `SupRecallAtKLoss` is
        a smooth Recall@k on it. `CrossBatchMemory` wraps any embedding
        loss of the package and ranks each query against the batch *and*
        the last `size` embeddings seen (detached, in non-trainable
        variables), switched on after a warm-up: the lists grow from 63
        to 63 + 256 items for the cost of one matrix product.
        """
    ),
    code(
        """
        from keras_sodeep.losses import (
            CrossBatchMemory, ROADMAPLoss, SupAPLoss, SupRecallAtKLoss)

        def with_memory(loss):
            return CrossBatchMemory(loss, size=256, warmup_steps=30)

        sup_losses = {
            "SupAPLoss": SupAPLoss,
            "SupAPLoss + memory": lambda: with_memory(SupAPLoss()),
        }
        if not FAST:
            sup_losses.update({
                "ROADMAPLoss": ROADMAPLoss,
                "ROADMAPLoss + memory": lambda: with_memory(ROADMAPLoss()),
                "SupRecallAtKLoss": SupRecallAtKLoss,
                "SupRecallAtKLoss + memory":
                    lambda: with_memory(SupRecallAtKLoss()),
            })
        for name, make in sup_losses.items():
            model = make_model()
            loss = make()
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
            model.fit(x_train, y_train, batch_size=64, epochs=EPOCHS,
                      shuffle=True, verbose=0)
            models[name], results[name] = model, unseen_recall(model)
            print(f"{name:<26}", [round(v, 3) for v in results[name].values()])
        memory = models["SupAPLoss + memory"].loss
        print("memory: steps", int(memory.iterations.numpy()),
              "| filled slots", int((memory.labels.numpy() >= 0).sum()))
        """
    ),
    code(
        """
        # SupAP learns the unseen digits too, and the memory was filled
        # and used inside the compiled `fit`.
        assert results["SupAPLoss"][1] > untrained[1] + 0.02, results
        assert int(memory.iterations.numpy()) > 30
        assert (memory.labels.numpy() >= 0).all()
        """
    ),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_train_and_evaluate_a_sorter.ipynb": SORTER,
    "03_spearman_regression.ipynb": REGRESSION,
    "04_multilabel_map.ipynb": MULTILABEL,
    "05_retrieval.ipynb": RETRIEVAL,
}


def main():
    for filename, items in NOTEBOOKS.items():
        nb = new_notebook(
            cells=cells(*items),
            metadata={
                "kernelspec": {
                    "display_name": "Python 3",
                    "language": "python",
                    "name": "python3",
                },
                "language_info": {"name": "python"},
                "colab": {"provenance": []},
            },
        )
        # Stable cell ids keep regenerated files diff-free.
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{i:02d}"
        nbformat.validate(nb)
        nbformat.write(nb, os.path.join(HERE, filename))
        print("wrote", filename)


if __name__ == "__main__":
    main()
