"""Stage 1, the language: rule text to a typed AST, and back.

`parser` cuts a file into statements and parses each with the LALR grammar (the
top-level `grammar/cep.lark`, shipped as `cep/grammar/`), caching the tables per user;
`transformer` turns Lark trees into the dataclasses of `ast`, every node with its span;
`printer` prints an AST back as rule text (and dumps it); `diagnostics` collects errors
and warnings and renders them with file:line:col, the source line and a caret; `walk`
is the one AST walker the later stages use. `catalog` is the symbol table the checks
fill and the runtime reads; `topics` parses MQTT topic templates; `sources` (decoding,
the byte-order mark, what a line is), `timezones` (IANA names only) and `files` are small
helpers every stage may use.
"""
