"""Governance: the hash chains' verification, retention pruning and the evidence report.

The chains themselves are written by the store's writer (:mod:`llmops.store.chain`) and the
audit events by the commands that change stored rows (:mod:`llmops.store.audit_log`).
"""
