# Helpers the test cells below use: they compare your result with the expected one and,
# when it is wrong, with what the usual mistakes give, so the message can name yours.
import numpy as np

def check_result(got, expected, mistakes=(), call="your function"):
    """Fail with a message naming the mistake when `got` differs from `expected`.

    mistakes: (message, value) pairs; value is what a mistake gives: an array,
    or a shape tuple when the mistake shows in the shape alone.
    """
    if got is None:
        raise AssertionError(f"{call} returned None: did you forget `return`?")
    got = np.asarray(got, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if got.shape == expected.shape and np.allclose(got, expected, atol=1e-4):
        return
    for message, value in mistakes:
        if isinstance(value, tuple):
            if got.shape == value:
                raise AssertionError(f"{call}: expected shape {expected.shape}, got {got.shape}: {message}")
        elif got.shape == np.shape(value) and np.allclose(got, value, atol=1e-4):
            raise AssertionError(f"{call}: {message}")
    if expected.ndim == 4 and got.shape == expected.transpose(0, 3, 1, 2).shape != expected.shape:
        if np.allclose(got, expected.transpose(0, 3, 1, 2), atol=1e-4):
            raise AssertionError(f"{call}: channels last: the output is (N, H_out, W_out, C), yours is channels-first")
    if expected.ndim == 4 and got.shape == expected.transpose(0, 2, 1, 3).shape != expected.shape:
        raise AssertionError(f"{call}: expected shape {expected.shape}, got {got.shape}: height and width are swapped "
                             "(arrays are (N, H, W, C): rows first, then columns)")
    if got.shape != expected.shape:
        raise AssertionError(f"{call}: expected shape {expected.shape}, got {got.shape}")
    diff = np.abs(got - expected)
    at = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape))
    raise AssertionError(f"{call}: wrong values; the largest difference is {diff[at]:.4g} at index {at} "
                         f"(expected {expected[at]:.4g}, got {got[at]:.4g})")
