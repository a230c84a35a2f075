"""Infrastructure layer: the local Kafka broker, client security settings, admin helpers (topics,
ACLs, read to end, lag) and the service lifecycle (signals, health). Imports only bcfwatch.core."""
