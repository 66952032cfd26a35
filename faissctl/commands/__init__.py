"""The click commands: parse arguments, call the pure modules and the thin I/O, print."""
