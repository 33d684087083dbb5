"""Paperless meeting documents ("phòng họp không giấy"): attached to a conference or a
series, checked by content, stored in the database, searchable in Vietnamese."""
