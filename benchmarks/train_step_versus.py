"""Train step of this checkout against an earlier commit's, paired in one process.

Exports `keras_stochastic/` at `--rev` (`git archive`) into a temporary folder
as the package `ks_rev` (every `keras_stochastic` in it, the registered
package name included, renamed so that both versions import side by side),
then runs `benchmarks.train_step` with its variants plus `rev_flipout`,
`rev_lrt`, `rev_reparam` and `rev_vd`: the same models built from the earlier
version's layers, interleaved in the same rounds. Used to show that a change
costs no speed (`benchmarks/RESULTS.md`, "Core redesign").

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.train_step_versus --rev a617abe \\
        --archs mlp --variants keras,ks_flipout,rev_flipout --rounds 12 --steps 10
"""

import os
import pathlib
import subprocess
import sys
import tempfile

from benchmarks import train_step

PREFIX = "rev_"


def export(rev, directory):
    """`keras_stochastic/` at `rev`, renamed `ks_rev`, under `directory`."""
    archive = subprocess.run(
        ["git", "archive", rev, "keras_stochastic"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    package = pathlib.Path(directory, "keras_stochastic")
    for path in package.rglob("*.py"):
        path.write_text(path.read_text().replace("keras_stochastic", "ks_rev"))
    package.rename(pathlib.Path(directory, "ks_rev"))


def install_variants(ks_rev):
    """Adds the `rev_*` variants to `benchmarks.train_step`."""
    estimators = ("flipout", "lrt", "reparam", "vd")
    train_step.ALL_VARIANTS = train_step.ALL_VARIANTS + tuple(
        PREFIX + e for e in estimators
    )
    library, estimator, factories = (
        train_step._library,
        train_step._estimator,
        train_step._factories,
    )

    def rev_factories(variant):
        if not variant.startswith(PREFIX):
            return factories(variant)
        current = train_step.ks
        train_step.ks = ks_rev
        try:
            return train_step._ks_factories(variant[len(PREFIX) :])
        finally:
            train_step.ks = current

    train_step._library = lambda v: "ks_rev" if v.startswith(PREFIX) else library(v)
    train_step._estimator = lambda v: (
        v[len(PREFIX) :] if v.startswith(PREFIX) else estimator(v)
    )
    train_step._factories = rev_factories


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    rev = None
    for index, arg in enumerate(argv):
        if arg == "--rev" and index + 1 < len(argv):
            rev = argv[index + 1]
            del argv[index : index + 2]
            break
        if arg.startswith("--rev="):
            rev = arg.split("=", 1)[1]
            del argv[index]
            break
    if rev is None:
        raise SystemExit("Pass --rev REV, the commit to compare with.")
    with tempfile.TemporaryDirectory() as directory:
        export(rev, directory)
        sys.path.insert(0, directory)
        import ks_rev

        print(f"ks_rev: keras_stochastic at {rev} ({os.path.dirname(ks_rev.__file__)})")
        install_variants(ks_rev)
        return train_step.main(argv)


if __name__ == "__main__":
    main()
