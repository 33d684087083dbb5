"""The conference record ("biên bản"): who attended from when to when, who never came and
why, the floor log, the recordings, the documents and the changes to the booking, as
JSON (`GET /api/v1/conferences/{id}/record`) and as a PDF in Vietnamese (`.../record.pdf`).

A feature beside the scheduler, the bridge and monitoring: it imports only the core
and reads what they stored (attendance rows, the events table, the audit log). What
lives in another feature's hands reaches it through ports the composition root fills
(`sources.py`): the bridge's recordings, the documents."""
