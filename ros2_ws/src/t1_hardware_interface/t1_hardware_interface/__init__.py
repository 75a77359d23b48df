"""Booster T1 hardware interface over the vendor SDK, with its safety layer."""
