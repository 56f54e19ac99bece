"""Column names of the preprocessed datasets that training iterates over."""

LABEL_KEY = "y"


def input_key(index: int) -> str:
    """The column of input ``index`` (``x0``, ``x1``, ...), in ``forward`` order."""
    return f"x{index}"
