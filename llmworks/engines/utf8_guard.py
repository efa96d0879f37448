"""Keep grammar-constrained output valid UTF-8.

llama.cpp's grammar reads a token's bytes as characters by their lead byte alone: it does not check that
the bytes after it are continuation bytes in the range the lead byte allows, so an overlong or broken
sequence (E0 9F BF, or a lead byte and then ASCII) passes as one character. Python decodes it to up to
three replacement characters, and a string breaks its schema: CI saw a `maxLength: 12` string come out
14 characters long, ending in three of them, from a random-weight model. No llama.cpp sampler checks
this, so before the grammar sees a step's candidates the runner masks the tokens that would make the
output bytes invalid. Which tokens may come next depends only on the state of a UTF-8 decoder (RFC 3629,
table 3-7 of the Unicode standard) after the last token: eight states, one mask each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# States: (continuation bytes still owed, the range the next one must be in). State 0 starts a character.
_ANY = (0x80, 0xBF)
STATES: list[tuple[int, tuple[int, int]]] = [
    (0, _ANY),
    (1, _ANY),
    (2, _ANY),
    (3, _ANY),
    (2, (0xA0, 0xBF)),  # after E0: no overlong three-byte forms
    (2, (0x80, 0x9F)),  # after ED: no surrogates
    (3, (0x90, 0xBF)),  # after F0: no overlong four-byte forms
    (3, (0x80, 0x8F)),  # after F4: nothing above U+10FFFF
]
_AFTER_LEAD = {0xE0: 4, 0xED: 5, 0xF0: 6, 0xF4: 7}


def step(state: int, byte: int) -> int | None:
    """The decoder's state after `byte`, or None when the bytes are no longer valid UTF-8."""
    owed, (lo, hi) = STATES[state]
    if owed:
        return owed - 1 if lo <= byte <= hi else None
    if byte < 0x80:
        return 0
    if byte in _AFTER_LEAD:
        return _AFTER_LEAD[byte]
    if 0xC2 <= byte <= 0xDF:
        return 1
    if 0xE1 <= byte <= 0xEF:
        return 2
    if 0xF1 <= byte <= 0xF3:
        return 3
    return None


def advance(state: int, piece: bytes) -> int | None:
    for byte in piece:
        if (next_state := step(state, byte)) is None:
            return None
        state = next_state
    return state


class Utf8Guard:
    """Per decoder state, which tokens may come next and the state each leaves."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        n = len(pieces)
        self.allowed = np.zeros((len(STATES), n), dtype=bool)
        self.next_state = np.zeros((len(STATES), n), dtype=np.int8)
        for tok, piece in enumerate(pieces):
            if not piece:  # control tokens: the grammar decides; never inside a character
                self.allowed[0, tok] = True
                continue
            # Only a token that starts with a continuation byte can follow an unfinished character.
            states = range(1, len(STATES)) if 0x80 <= piece[0] <= 0xBF else (0,)
            for state in states:
                if (after := advance(state, piece)) is not None:
                    self.allowed[state, tok] = True
                    self.next_state[state, tok] = after
