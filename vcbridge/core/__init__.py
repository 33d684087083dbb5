"""The shared core every feature builds on: settings, clock, database, auth, HTTP
contract, event bus, roster, audit, users and presence. It imports no feature
(scheduler, bridge, monitoring) and not the composition root (`vcbridge.app`)."""
