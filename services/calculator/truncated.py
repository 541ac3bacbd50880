"""Numbers kept to a fixed number of leading bits, as mantissa * 2^exponent.

The final stage needs Q and T only to the precision of the result (about 3.3 bits per decimal),
while the splitting leaves them 2 to 3 times longer: cutting them, and the operands of the
products made from them, as soon as they arrive keeps the final stage's memory near the result's
size instead of the series'.
"""

from typing import NamedTuple

from services.calculator.chudnovsky import Mpz


class Truncated(NamedTuple):
    """~ mantissa * 2^exponent, the mantissa holding at most the bits it was cut to."""

    mantissa: Mpz
    exponent: int

    @classmethod
    def of(cls, value: Mpz, bits: int) -> "Truncated":
        """The leading `bits` bits of value (floor; relative error below 2^-(bits-1))."""
        drop = max(0, value.bit_length() - bits)
        return cls(value >> drop, drop)

    def times(self, other: "Truncated", bits: int) -> "Truncated":
        product = Truncated.of(self.mantissa * other.mantissa, bits)
        return Truncated(product.mantissa, product.exponent + self.exponent + other.exponent)

    def shifted(self, exponent: int) -> "Truncated":
        return Truncated(self.mantissa, self.exponent + exponent)

    def plus(self, other: "Truncated", bits: int) -> "Truncated":
        """The sum, aligned to the coarser exponent: for operands that do not cancel (here the
        smaller term of T is tens of bits below the larger) it keeps `bits` bits of precision."""
        exponent = max(self.exponent, other.exponent)
        total = (self.mantissa >> (exponent - self.exponent)) + (
            other.mantissa >> (exponent - other.exponent)
        )
        cut = Truncated.of(total, bits)
        return Truncated(cut.mantissa, cut.exponent + exponent)
