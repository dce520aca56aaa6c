"""Registers the platform built-ins: echo, psi, private-join-sum."""
