"""The few browser pages Conduit serves: CLI login and invitation acceptance."""
