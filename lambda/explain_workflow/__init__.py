"""The workflow functions' code, shared by the four handlers, the local mode and the CLI.

Most modules are a pure core that reads and writes through two ports, ``storage.Storage`` and
``executions.Executions``, and never builds a client itself. The AWS edge is in a few modules of its own:
``storage.S3Storage`` and ``executions.StepFunctionsExecutions`` (boto3 adapters of the two ports), ``aws`` (the
handlers' settings and clients, made once per container) and ``observability`` (Powertools logging, tracing and
metrics).
"""
