"""Booking (conflict rules, recurrence, the booking API, calendar feeds) and,
later, the lifecycle that opens, connects and closes every conference."""
