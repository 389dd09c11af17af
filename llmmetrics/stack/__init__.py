"""Generated observability stack: Grafana dashboards and Prometheus rules from one ``StackOptions``.

``llmmetrics generate`` (``llmmetrics.stack.generate``) writes ``grafana/dashboards/*.json`` and
``prometheus/rules/*.yml``; the server configs next to them (Prometheus, Alertmanager, Loki, Grafana
provisioning, docker compose) are hand-written and reference those files.
"""
