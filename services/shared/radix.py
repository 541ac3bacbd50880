"""How digits of one radix compare with decimals: what a hexadecimal job costs to compute."""

import math

from services.shared.events import Radix

DECIMALS_PER_HEX_DIGIT = math.log10(16)


def decimals_needed(num: int, radix: Radix) -> int:
    """How many decimals carry as much of pi as `num` digits of `radix` (before guard digits)."""
    return num if radix == 10 else math.ceil(num * DECIMALS_PER_HEX_DIGIT)
