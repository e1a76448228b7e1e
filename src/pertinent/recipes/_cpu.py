"""What /proc/cpuinfo says of this CPU (kernel choices read it; torch exposes neither)."""

from __future__ import annotations

__all__ = ["cpu_field"]


def cpu_field(name: str) -> str:
    """The value of the first ``name`` line of /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""
