"""Per-endpoint gauges, rendered straight to the Prometheus text format.

Each endpoint has about fifteen series (up, health state, ready, quality...).
prometheus-client's labelled gauges format every sample generically on each
scrape: with a thousand endpoints that is ~15,000 samples and well over 100 ms
of one core per scrape. These families keep plain `{endpoint: value}` maps
and reuse each series' name-and-labels prefix, so a scrape costs a few
milliseconds. The output is the same text exposition format (HELP, TYPE,
escaped label values), checked by `promtool check metrics` in the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import utils

# prometheus-client's own number format (Go's: "NaN", "+Inf", "1.5e+06"); untyped there.
_format: Callable[[float], str] = utils.floatToGoString


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


class EndpointGauge:
    """One gauge family with the label `endpoint` (and optionally one fixed extra label)."""

    def __init__(self, name: str, documentation: str, extra_label: str | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.extra_label = extra_label
        # (endpoint, extra label value or "") -> value
        self._values: dict[tuple[str, str], float] = {}
        self._prefixes: dict[tuple[str, str], str] = {}

    def set(self, endpoint: str, value: float, extra: str = "") -> None:
        """Set the series of `endpoint` (and `extra`, the extra label's value)."""
        key = (endpoint, extra)
        if key not in self._prefixes:
            labels = f'endpoint="{_escape_label(endpoint)}"'
            if self.extra_label is not None:
                labels += f',{self.extra_label}="{_escape_label(extra)}"'
            self._prefixes[key] = f"{self.name}{{{labels}}} "
        self._values[key] = float(value)

    def get(self, endpoint: str, extra: str = "") -> float | None:
        return self._values.get((endpoint, extra))

    def remove(self, endpoint: str) -> None:
        """Drop every series of `endpoint`."""
        for key in [k for k in self._values if k[0] == endpoint]:
            del self._values[key]
            self._prefixes.pop(key, None)

    def render(self) -> str:
        """HELP, TYPE and one line per series, sorted by labels."""
        lines = [f"# HELP {self.name} {_escape_help(self.documentation)}\n",
                 f"# TYPE {self.name} gauge\n"]
        prefixes = self._prefixes
        lines += [prefixes[key] + _format(value) + "\n"
                  for key, value in sorted(self._values.items())]
        return "".join(lines)


def render_all(gauges: Iterable[EndpointGauge]) -> bytes:
    """The text exposition of `gauges`, ready to append to prometheus-client's output."""
    return "".join(gauge.render() for gauge in gauges).encode()
