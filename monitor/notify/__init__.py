"""Telling people: routing to destinations, the outbox delivery loop, and the notifiers."""
