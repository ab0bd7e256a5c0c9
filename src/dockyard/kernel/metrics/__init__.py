"""Request metrics: what every request did, recorded off the request's path."""
