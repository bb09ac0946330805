"""AuxPoW difficulty retarget, exactly as Alys's ``get_next_work_required`` (ALYS-PROTOCOL §3.5).

Alys retargets by block *counts*, not time: ``diff = head + 1 - last_pow_number`` blocks since
the latest PoW block, and ``pow_target_spacing`` is the number of blocks one PoW is meant to
cover. The ratio ``diff / spacing`` is rounded to two places with banker's rounding (rust_decimal's
``round_dp(2)``) and clamped; note Alys's clamp for ratios below 1 is ``min(ratio, max/100)``, so
a ratio in (0.20, 1) becomes 0.20 (five times harder), not 0.80. The new target is
``target / 100 * percent`` (integer, saturating at 2**256 - 1), compacted lossily. These quirks
are consensus: a node that "fixed" them would reject Alys's proofs.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated

import msgspec
from msgspec import Meta

from alys_fast.auxpow import compact_from_target

U256_MAX = 2**256 - 1
# rust_decimal keeps 28 significant digits; its division rounds half to even past them.
_DECIMAL = Context(prec=28, rounding=ROUND_HALF_EVEN)
_CENTS = Decimal("0.01")


U32 = Annotated[int, Meta(ge=0, le=0xFFFFFFFF)]
Blocks = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class RetargetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alys's ``BitcoinConsensusParams`` (``retargetParams`` in its JSON); defaults are Alys's DEV.

    ``pow_limit`` and ``pow_lower_limit`` are kept so Alys specs carry over, but Alys never
    applies them (nor does this module): the target may drift past either.
    ``max_pow_adjustment`` is a whole percentage; above 155 Alys's ``u8`` percent overflows
    (it panics), so it is refused here.
    """

    pow_target_timespan: Blocks = 60
    pow_target_spacing: Blocks = 5
    max_pow_adjustment: Annotated[int, Meta(ge=0, le=155)] = 20
    pow_no_retargeting: bool = False
    pow_limit: U32 = 0x2100FFFF
    pow_lower_limit: U32 = 0x1A322A97

    def __post_init__(self) -> None:
        if self.pow_target_timespan < self.pow_target_spacing:
            raise ValueError(
                "pow_target_timespan must be >= pow_target_spacing (the retarget interval is "
                f"their quotient), got {self.pow_target_timespan} < {self.pow_target_spacing}"
            )

    @property
    def adjustment_interval(self) -> int:
        """Blocks between scheduled retargets (``timespan // spacing``; 60 // 5 = 12 on DEV)."""
        return self.pow_target_timespan // self.pow_target_spacing


def alys_target_from_compact(bits: int) -> int:
    """Alys's ``uint256_target_from_compact``: a negative mantissa gives 0 and bits shifted past
    256 are lost (no error, unlike :func:`alys_fast.auxpow.target_from_bits`)."""
    size = bits >> 24
    if size <= 3:
        mantissa, shift = (bits & 0xFFFFFF) >> 8 * (3 - size), 0
    else:
        mantissa, shift = bits & 0xFFFFFF, 8 * (size - 3)
    if mantissa > 0x7FFFFF:
        return 0
    return (mantissa << shift) & U256_MAX


def adjustment_percent(blocks_since_pow: int, params: RetargetParams) -> int:
    """The whole percentage the target is scaled by (Alys's clamped, rounded ratio * 100)."""
    blocks = max(blocks_since_pow, 1)
    ratio = _DECIMAL.divide(Decimal(blocks), Decimal(params.pow_target_spacing))
    ratio = ratio.quantize(_CENTS, rounding=ROUND_HALF_EVEN)
    max_down = Decimal(params.max_pow_adjustment) / 100
    if ratio < 1:
        ratio = min(ratio, max_down)
    elif ratio > 1:
        ratio = min(ratio, max_down + 1)
    return int(ratio * 100)


def next_work_required(
    last_bits: int, last_pow_number: int, head_number: int, params: RetargetParams
) -> int:
    """The compact ``bits`` a PoW submitted on top of ``head_number`` must meet, given the
    latest PoW block (its number and its AuxPoW header's ``bits``)."""
    if last_pow_number > head_number + 1:
        raise ValueError(
            f"the latest PoW block ({last_pow_number}) is past the head ({head_number}) + 1"
        )
    blocks_since_pow = (head_number + 1 - last_pow_number) & 0xFFFFFFFF  # Alys casts to u32
    interval = params.adjustment_interval
    due = head_number % interval == 0 or blocks_since_pow > interval
    if params.pow_no_retargeting or not due:
        return last_bits
    target = alys_target_from_compact(last_bits)
    adjusted = min(target // 100 * adjustment_percent(blocks_since_pow, params), U256_MAX)
    return compact_from_target(adjusted)
