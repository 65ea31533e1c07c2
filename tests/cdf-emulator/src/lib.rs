//! CDF emulator.
