"""`cep graph`: what a rule set compiles to, as pictures (Mermaid or Graphviz DOT).

Built from the checked catalog and the AST only (never from runtime objects):
`network.py` draws the event processing network, `machine.py` each rule's pattern as a
state machine, `render.py` writes either as Mermaid or DOT. See docs/cli.md.
"""

from __future__ import annotations

from cep.language.catalog import Catalog
from cep.tools.graph.machine import build_machine
from cep.tools.graph.network import build_network
from cep.tools.graph.render import (
    render_dot,
    render_mermaid_flow,
    render_mermaid_states,
)

FORMATS = ("mermaid", "dot")
PARTS = ("all", "network", "rules")


def render(catalog: Catalog, fmt: str = "mermaid", part: str = "all",
           rules: tuple[str, ...] = ()) -> str:
    """The network and/or the rules' state machines as one text.

    Mermaid output is Markdown: a heading and a ```mermaid block per diagram (GitHub
    renders it; mermaid-cli renders .md files). DOT output is one `digraph` per diagram.
    `rules` limits the state machines to those rule names.
    """
    chunks: list[str] = []
    if part in ("all", "network"):
        network = build_network(catalog)
        if fmt == "dot":
            chunks.append(render_dot(network, "network"))
        else:
            chunks.append("## Event processing network\n\n" + _fence(render_mermaid_flow(network)))
    if part in ("all", "rules"):
        for info in catalog.rules:
            if rules and info.name not in rules:
                continue
            machine = build_machine(info)
            if fmt == "dot":
                chunks.append(render_dot(machine, f"rule {info.name}"))
            else:
                chunks.append(f"## Rule `{info.name}`\n\n"
                              + _fence(render_mermaid_states(machine)))
    return "\n".join(chunks)


def _fence(text: str) -> str:
    return "```mermaid\n" + text + "```\n"
