"""The tester console (`fvs console`): a small web application for testers.

It is an ordinary client of the FVS gRPC API (``fvs.api.client``), calling with the tester's
own certificate, so the audit trail names the tester's system. It never opens the store, keeps
no images or results (the session history lives in the browser), and imports nothing from the
service, the pipeline or the store.
"""
