"""Writing graphs as Mermaid (flowchart for the network, stateDiagram for machines) or DOT.

Labels come from rule files, so every one is escaped for the target language; nothing
from a rule is ever written unescaped.
"""

from __future__ import annotations

from cep.tools.graph.model import Graph

# ---------------------------------------------------------------- Mermaid

_MERMAID_SHAPES = {"topic-in": ('[/"', '"/]'), "type": ('("', '")'), "derived": ('("', '")'),
                   "window": ('[("', '")]'), "rule": ('["', '"]'), "context": ('{{"', '"}}'),
                   "topic-out": ('[\\"', '"\\]')}
_MERMAID_CLASSES = {"topic-in": "fill:#e8f4ff,stroke:#4a90d9",
                    "type": "fill:#fff8e1,stroke:#c9a227",
                    "derived": "fill:#fff1d6,stroke:#d98c00,stroke-dasharray:4 2",
                    "window": "fill:#e9f7f7,stroke:#2a9d9d",
                    "rule": "fill:#eaf7ea,stroke:#3c9a3c",
                    "context": "fill:#f3e8ff,stroke:#8a5cc7",
                    "topic-out": "fill:#ffecec,stroke:#d94a4a"}


def mermaid_text(text: str) -> str:
    """Text inside a Mermaid label: entity codes for the characters Mermaid reads."""
    out: list[str] = []
    for char in text:
        if char == "\n":
            out.append("<br/>")
        elif char in '"#;<>{}[]|`':
            out.append(f"#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def render_mermaid_flow(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for node in graph.nodes:
        left, right = _MERMAID_SHAPES[node.kind]
        lines.append(f"    {node.id}{left}{mermaid_text(node.label)}{right}")
    for edge in graph.edges:
        arrow = "-.->" if edge.style == "dashed" else "-->"
        label = f"|{mermaid_text(edge.label)}|" if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    used = [kind for kind in _MERMAID_CLASSES if any(n.kind == kind for n in graph.nodes)]
    for kind in used:
        lines.append(f"    classDef {kind.replace('-', '_')} {_MERMAID_CLASSES[kind]}")
        ids = ",".join(n.id for n in graph.nodes if n.kind == kind)
        lines.append(f"    class {ids} {kind.replace('-', '_')}")
    return "\n".join(lines) + "\n"


def render_mermaid_states(graph: Graph) -> str:
    lines = ["stateDiagram-v2", "    direction LR"]
    for node in graph.nodes:
        if node.kind in ("fork", "join"):
            lines.append(f"    state {node.id} <<{node.kind}>>")
        else:
            lines.append(f"    {node.id} : {mermaid_text(node.label)}")
    for node in graph.nodes:
        if node.kind == "start":
            lines.append(f"    [*] --> {node.id}")
    for edge in graph.edges:
        label = f" : {mermaid_text(edge.label)}" if edge.label else ""
        lines.append(f"    {edge.source} --> {edge.target}{label}")
    for node in graph.nodes:
        if node.kind in ("match", "fail"):
            lines.append(f"    {node.id} --> [*]")
    styled = {"match": "fill:#eaf7ea,stroke:#3c9a3c", "fail": "fill:#ffecec,stroke:#d94a4a"}
    for kind, style in styled.items():
        ids = ",".join(n.id for n in graph.nodes if n.kind == kind)
        if ids:
            lines.append(f"    classDef {kind} {style}")
            lines.append(f"    class {ids} {kind}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- DOT

_DOT_SHAPES = {"topic-in": "shape=parallelogram, style=filled, fillcolor=\"#e8f4ff\"",
               "type": "shape=box, style=\"rounded,filled\", fillcolor=\"#fff8e1\"",
               "derived": "shape=box, style=\"rounded,filled,dashed\", fillcolor=\"#fff1d6\"",
               "window": "shape=cylinder, style=filled, fillcolor=\"#e9f7f7\"",
               "rule": "shape=box, style=filled, fillcolor=\"#eaf7ea\"",
               "context": "shape=hexagon, style=filled, fillcolor=\"#f3e8ff\"",
               "topic-out": "shape=invhouse, style=filled, fillcolor=\"#ffecec\"",
               "start": "shape=box, style=\"rounded,bold\"",
               "state": "shape=ellipse",
               "match": "shape=doublecircle, style=filled, fillcolor=\"#eaf7ea\"",
               "fail": "shape=octagon, style=filled, fillcolor=\"#ffecec\"",
               "fork": "shape=box, style=filled, fillcolor=black, height=0.1, width=0.6, "
                       "label=\"\"",
               "join": "shape=box, style=filled, fillcolor=black, height=0.1, width=0.6, "
                       "label=\"\""}
_DOT_EDGES = {"solid": "", "dashed": "style=dashed", "kill": "color=\"#d94a4a\""}


def dot_text(text: str) -> str:
    """A DOT double-quoted string's content."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_dot(graph: Graph, name: str) -> str:
    lines = [f'digraph "{dot_text(name)}" {{', "    rankdir=LR;",
             '    node [fontname="Helvetica", fontsize=11];',
             '    edge [fontname="Helvetica", fontsize=10];']
    for node in graph.nodes:
        shape = _DOT_SHAPES[node.kind]
        label = "" if "label=" in shape else f'label="{dot_text(node.label)}", '
        lines.append(f"    {node.id} [{label}{shape}];")
    failed = {node.id for node in graph.nodes if node.kind == "fail"}
    for edge in graph.edges:
        attrs = [f'label="{dot_text(edge.label)}"'] if edge.label else []
        style = "kill" if edge.target in failed else edge.style
        if _DOT_EDGES[style]:
            attrs.append(_DOT_EDGES[style])
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
