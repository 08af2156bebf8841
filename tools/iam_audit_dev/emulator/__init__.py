"""Local AWS emulator (moto in server mode plus CIS-realistic patches) and demo-org seeding."""

from .process import Emulator, start_emulator

__all__ = ["Emulator", "start_emulator"]
