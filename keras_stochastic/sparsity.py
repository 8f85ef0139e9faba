"""`sparsity(model)`: how many kernel weights are zero in mean-mode inference."""

from keras_stochastic import kernels as kernels_lib

GLOBAL = "global"


class SparsityReport(dict):
    """Per-layer and global counts of zero kernel weights.

    A `dict` mapping each layer's name to `{"zeros", "total", "fraction"}`,
    plus the key `"global"` with the totals over all layers. `str(report)`
    (or `print(report)`) gives a table.
    """

    @property
    def layers(self):
        """The per-layer entries (everything except `"global"`)."""
        return {name: entry for name, entry in self.items() if name != GLOBAL}

    def __str__(self):
        rows = [(name, entry) for name, entry in self.layers.items()]
        rows.append((GLOBAL, self[GLOBAL]))
        width = max(len("layer"), *(len(name) for name, _ in rows))
        header = f"{'layer':<{width}}  {'zeros':>10}  {'total':>10}  {'sparsity':>8}"
        lines = [header, "-" * len(header)]
        for index, (name, entry) in enumerate(rows):
            if index == len(rows) - 1:
                lines.append("-" * len(header))
            lines.append(
                f"{name:<{width}}  {entry['zeros']:>10d}  {entry['total']:>10d}  "
                f"{entry['fraction']:>8.2%}"
            )
        return "\n".join(lines)


def _entry(zeros, total):
    return {
        "zeros": int(zeros),
        "total": int(total),
        "fraction": float(zeros) / total if total else 0.0,
    }


def sparsity(model):
    """Reports the kernel weights that are zero in mean-mode inference.

    Counts, per layer and over the whole model (nested models and recurrent
    cells included):

    - variational dropout layers: the weights masked by `log_alpha >=
      threshold`, plus exact zeros of `theta`;
    - other keras_stochastic layers: exact zeros of their kernel means
      (e.g. weights pruned by `ks.callbacks.FlipOutPruning`);
    - Keras `Dense`, `EinsumDense`, convolution (incl. transposed,
      depthwise and separable) and `SimpleRNN`/`LSTM`/`GRU` cells: exact
      zeros of their kernels (and recurrent kernels).

    Biases, embeddings and normalization parameters never count.

    Args:
        model: A built Keras model or layer.

    Returns:
        A `SparsityReport`: a dict mapping each counted layer's name to
        `{"zeros": int, "total": int, "fraction": float}`, plus the key
        `"global"` with the totals over the model. Printing it gives a table.

    Example:

    ```python
    report = ks.sparsity(model)
    print(report)                      # a table, one row per layer
    report["global"]["fraction"]       # fraction of zero weights in the model
    report["dense_1"]["zeros"]         # zero weights of the layer "dense_1"
    ```
    """
    report = SparsityReport()
    total_zeros = total_weights = 0
    for layer in kernels_lib.layers_with_kernels(model):
        if not layer.built:
            raise ValueError(
                f"Layer {layer.name!r} is not built yet; call the model on data "
                "(or build it) before asking for its sparsity."
            )
        kernels = kernels_lib.inference_kernels(layer)
        if not kernels:
            continue
        zeros = total = 0
        for kernel in kernels:
            kernel_zeros, kernel_total = kernels_lib.zero_count(kernel)
            zeros += kernel_zeros
            total += kernel_total
        name = layer.name
        suffix = 1
        while name in report or name == GLOBAL:
            name = f"{layer.name}_{suffix}"
            suffix += 1
        report[name] = _entry(zeros, total)
        total_zeros += zeros
        total_weights += total
    if not report:
        raise ValueError(
            f"The model {model.name!r} has no kernel that `sparsity` counts "
            "(Dense, convolution or recurrent kernels, keras_stochastic or "
            f"Keras). Received: model={model}"
        )
    report[GLOBAL] = _entry(total_zeros, total_weights)
    return report
