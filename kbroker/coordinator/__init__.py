"""Coordinators: consumer groups and their durable offsets (`offsets`)."""
