"""Test doubles that speak the real protocols: a loopback Claude API server and a scripted model."""
