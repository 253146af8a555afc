"""``python -m distillery.methods``: the methods table of docs/methods.md, from the declarations."""
from __future__ import annotations

from . import METHODS


def methods_table() -> str:
    """One Markdown row per method: name, paper, what it needs, the params it reads (own ones with defaults)."""
    lines = ["| `kd.method` | paper | needs | params (defaults) |", "|---|---|---|---|"]
    for name, method in METHODS.items():
        needs = ", ".join(sorted(method.needs)) or "nothing (no teacher)"
        shared = [f"kd.{p}" for p in method.shared]
        own = [f"kd.{name}.{p} = {field.default!r}" for p, field in method.params.items()]
        lines.append(f"| `{name}` | {method.paper} | {needs} | {', '.join(shared + own) or '—'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(methods_table())
