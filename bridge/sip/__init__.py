"""SIP room systems in the conference, through Janus's SIP plugin (issue 17)."""
