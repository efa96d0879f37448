"""`calculator`: exact arithmetic on an expression, without `eval`.

The expression is parsed with `ast` and only numbers, + - * / // % **, parentheses and a few functions
are evaluated, on exact fractions (0.1 + 0.2 is 0.3), so nothing the model writes runs as code. Written
the way people write sums: `17% of 2,340`, `2^10`, `3 x 4`, `12 ÷ 4` are understood.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from llmworks.agent.tools.base import Tool, ToolError

__all__ = ["Calculator", "evaluate", "format_number"]

MAX_EXPONENT = 10_000
MAX_DIGITS = 10_000

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_EXACT: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": lambda x, n=0: round(Fraction(x), int(n)),
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "gcd": lambda a, b: math.gcd(int(a), int(b)),
    "factorial": lambda n: math.factorial(_small_int(n, 1000)),
    "comb": lambda n, k: math.comb(_small_int(n, 10_000), _small_int(k, 10_000)),
}
_FLOAT: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class Calculator(Tool):
    name = "calculator"
    description = (
        "Compute an arithmetic expression exactly, e.g. '0.17 * 2340', '17% of 2340', '(3 + 4) ** 2', "
        "'sqrt(2)'. Numbers, + - * / // ** and % (percent; 'mod' is the remainder), parentheses, and abs "
        "round min max floor ceil sqrt log exp sin cos tan gcd factorial comb pi e."
    )
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The expression to compute."}},
        "required": ["expression"],
    }

    def __call__(self, expression: str) -> str:  # type: ignore[override]
        return format_number(evaluate(expression))


def evaluate(expression: str, variables: Mapping[str, float] | None = None) -> Fraction | float:
    """The value of an arithmetic expression: an exact Fraction, or a float once a float function (sqrt,
    log, ...) or a float variable is involved. ToolError for anything else."""
    text = _normalize(expression)
    if not text:
        raise ToolError("the expression is empty.")
    if len(text) > 2000:
        raise ToolError("the expression is too long (at most 2000 characters).")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot read {expression!r} as arithmetic.") from None
    try:
        return _eval(tree.body, dict(variables or {}))
    except ZeroDivisionError:
        raise ToolError("division by zero.") from None
    except (OverflowError, ValueError) as e:
        raise ToolError(f"cannot compute {expression!r}: {e}.") from None


def format_number(value: Fraction | float) -> str:
    """Integers as integers, exact fractions as decimals (and the fraction when it does not terminate)."""
    if isinstance(value, float):
        return repr(round(value, 12)) if math.isfinite(value) else str(value)
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:  # a terminating decimal: shown exactly
        digits = 0
        while (value * 10**digits).denominator != 1:
            digits += 1
        scaled = abs(value.numerator * 10**digits // value.denominator)
        whole, frac = divmod(scaled, 10**digits)
        return f"{'-' if value < 0 else ''}{whole}.{frac:0{digits}d}"
    return f"{float(value):.12g} (= {value.numerator}/{value.denominator})"


def _normalize(text: str) -> str:
    t = text.strip()
    while t.endswith("}") and t.count("}") > t.count("{"):  # the JSON brace a small model meant to close
        t = t[:-1].rstrip()
    t = t.rstrip("=?").strip()
    # An equation, the model's own result after the `=` (`17% of 2340 = 0.17 * 2340 = 32.125`): the left side.
    t = re.split(r"(?<![<>=!])=(?!=)", t)[0].strip()
    t = t.replace("×", "*").replace("÷", "/").replace("−", "-").replace("^", "**")
    t = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d(])", "*", t)
    if not re.search(r"[A-Za-z_]\w*\s*\(", t):  # no function calls: commas are thousands separators
        t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"\bmod\b", "%%", t)  # the remainder: 17 mod 5
    t = re.sub(r"(\d+(?:\.\d+)?)\s*%(?!%)\s*(?:of\b)?\s*(?=[\d(.])", r"(\1/100)*", t)  # 17% of 2340
    t = re.sub(r"(\d+(?:\.\d+)?)\s*%(?!%)", r"(\1/100)", t).replace("%%", "%")  # 17%, 50% * 10
    return t.strip()


def _small_int(x: Any, limit: int) -> int:
    if (isinstance(x, float) and not x.is_integer()) or (isinstance(x, Fraction) and x.denominator != 1):
        raise ValueError(f"{x} is not a whole number")
    n = int(x)
    if not 0 <= n <= limit:
        raise ValueError(f"{n} is out of range (0 to {limit})")
    return n


def _eval(node: ast.AST, variables: dict[str, float]) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.Name):
        if node.id in variables:
            return variables[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name '{node.id}'.")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand, variables)
        return v if isinstance(node.op, ast.UAdd) else -v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, variables), _eval(node.right, variables)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        result = _BINARY[type(node.op)](left, right)
        if (
            isinstance(result, Fraction)
            and max(len(str(result.numerator)), len(str(result.denominator))) > MAX_DIGITS
        ):
            raise ValueError("the result has too many digits")
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_eval(a, variables) for a in node.args]
        name = node.func.id
        if name in _EXACT:
            out = _EXACT[name](*args)
            return Fraction(out) if isinstance(out, int) else out
        if name in _FLOAT:
            return _FLOAT[name](*(float(a) for a in args))
        raise ToolError(f"unknown function '{name}'.")
    raise ToolError(f"'{ast.unparse(node)}' is not arithmetic this calculator does.")


def _power(base: Any, exp: Any) -> Any:
    if isinstance(exp, Fraction) and exp.denominator == 1 and isinstance(base, Fraction):
        if abs(exp) > MAX_EXPONENT or (abs(base) > 1 and abs(exp) * math.log10(abs(base)) > MAX_DIGITS):
            raise ValueError("the power is too large")
        return base**exp.numerator
    return float(base) ** float(exp)
