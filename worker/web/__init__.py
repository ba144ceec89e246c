"""The web layer: every page and endpoint, with the one URLconf (`urls.py`).

Views decode the request, call a stage (worker.subscribers, worker.ops, worker.ingest, ...) and render
the answer; the rules live in the stages. Permissions, roles and the ops API's keys are worker.ops';
the views here only check them (`security.requires`).
"""
