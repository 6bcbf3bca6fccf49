"""Backends run a rendered cluster somewhere; everything else talks to them through Backend."""
