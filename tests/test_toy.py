import numpy as np
import pytest

from cosegkit.toy import TOY_LOSSES, optimise_points, two_class_points


@pytest.mark.parametrize("name", TOY_LOSSES)
def test_each_loss_separates_the_two_clouds(name):
    points, labels = two_class_points(n_per_class=40, seed=1)
    history = optimise_points(name, points, labels, steps=100, snapshots=3)
    (_, start, first_loss), (_, end, last_loss) = history[0], history[-1]

    def gap(x):
        return np.linalg.norm(x[labels == 1].mean(0) - x[labels == 0].mean(0))

    assert last_loss < 0.5 * first_loss
    assert gap(end) > 1.5 * gap(start)


def test_unknown_toy_loss_is_named():
    points, labels = two_class_points(n_per_class=5)
    with pytest.raises((ValueError, KeyError), match="contrastive"):
        optimise_points("contrastive", points, labels, lr=0.1)
