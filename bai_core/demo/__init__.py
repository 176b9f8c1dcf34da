"""Offline demos: everything here runs on this machine, with no hub and no GPU."""
