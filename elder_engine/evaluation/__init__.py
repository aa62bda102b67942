"""The harness around the method: data readers (ZsRE, COUNTERFACT, hallucination, plain), the
metrics, lifelong sequential runs of ELDER and the baselines, comparison tables, curves,
reports, and grid sweeps on Ray."""
