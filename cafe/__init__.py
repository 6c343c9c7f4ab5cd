"""cafe-elt's command line and local platform: the `cafe` CLI, the embedded stack, the sample
generator, the static report and the Grafana dashboards as code. It drives `loader` (what
AWS Lambda runs); `loader` never imports it."""
