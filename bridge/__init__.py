"""WebRTC media sessions of every bridge (rooms, signaling, mixing, forwarding, the agent)."""
