"""The freeze-safe execution model of the Lambda handler (docs/lambda.md).

- :mod:`.events`: llamaws's own (non-HTTP) invocation payloads;
- :mod:`.invoker`: asynchronous self-invocation (boto3 in the cloud, HTTP locally);
- :mod:`.coordination`: the per-handler lease and inbox items in the deployment table;
- :mod:`.quiescence`: a runtime decorator that tells when a run has nothing left to do;
- :mod:`.driver`: drives one run under its lease, hands runs on between invocations;
- :mod:`.http`: the Lambda-specific HTTP behaviour (budgeted ``run``, bounded streams);
- :mod:`.container`: one per process: the loop, the app, the driver.
"""
