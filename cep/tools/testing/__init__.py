"""`cep test`: scenario files (a rule set, a trace, the expected output), running them,
and a readable diff of what differs. See docs/scenarios.md."""
